import { execFile } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GrubEnvironment } from './grub-environment.js';
import { createScratchBootEnvironment, type ScratchBootEnvironment } from './testing.js';

const run = promisify(execFile);

describe('GrubEnvironment (grub-editenv on a scratch environment block)', () => {
  let scratch: ScratchBootEnvironment;
  let file: string;
  beforeEach(async () => {
    scratch = await createScratchBootEnvironment('grub');
    file = scratch.storage[0]!;
  });
  afterEach(async () => scratch.remove());

  it('leaves a valid 1024-byte block that grub-editenv itself reads', async () => {
    await scratch.open().write({ otter_slot: 'a', upgrade_available: '1' });
    await scratch.open().write({ upgrade_available: null, bootcount: '2' });
    expect((await readFile(file)).length).toBe(1024);
    expect((await run('grub-editenv', [file, 'list'])).stdout).toBe('otter_slot=a\nbootcount=2\n');
  });

  it('reads a foreign value that holds a newline as one value', async () => {
    await run('grub-editenv', [file, 'set', 'note=first\nsecond', 'saved_entry=Debian GNU/Linux']);
    expect(await scratch.open().read()).toEqual({ note: 'first\nsecond', saved_entry: 'Debian GNU/Linux' });
  });

  it('refuses a listing in which a foreign value forges a line of an existing variable', async () => {
    await scratch.open().write({ otter_slot: 'a' });
    await run('grub-editenv', [file, 'set', 'note=x\notter_slot=b']);
    await expect(scratch.open().read()).rejects.toMatchObject({ code: 'BOOT_ENV_CORRUPT' });
  });

  it('refuses a file that is not an environment block, and leaves it as it was', async () => {
    await writeFile(file, 'otter_slot=b\n');
    await expect(scratch.open().read()).rejects.toMatchObject({ code: 'BOOT_ENV_CORRUPT' });
    await expect(scratch.open().write({ otter_slot: 'a' })).rejects.toMatchObject({
      code: 'BOOT_ENV_CORRUPT',
    });
    expect(await readFile(file, 'utf8')).toBe('otter_slot=b\n');
  });

  it('does not create a missing environment (grub-editenv list would)', async () => {
    await rm(file);
    await expect(scratch.open().read()).rejects.toMatchObject({
      code: 'BOOT_ENV_UNAVAILABLE',
      message: expect.stringContaining('grub-editenv'),
    });
    await expect(scratch.open().write({ otter_slot: 'a' })).rejects.toMatchObject({
      code: 'BOOT_ENV_UNAVAILABLE',
    });
    expect(await readdir(dirname(file))).toEqual([]);
  });

  it('refuses a change set that does not fit the block, changing nothing', async () => {
    await scratch.open().write({ otter_slot: 'a' });
    const before = await readFile(file);
    const tooMuch = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`filler${i}`, 'x'.repeat(200)]));
    await expect(scratch.open().write({ ...tooMuch, otter_slot: 'b' })).rejects.toMatchObject({
      code: 'BOOT_ENV_UNAVAILABLE',
      message: expect.stringContaining('too small'),
    });
    expect(await readFile(file)).toEqual(before);
    expect((await readdir(dirname(file))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('names the Debian package when the tool is missing', async () => {
    const env = new GrubEnvironment({ file, grubEditenv: '/nonexistent/grub-editenv' });
    await expect(env.read()).rejects.toMatchObject({ message: expect.stringContaining('grub-common') });
  });
});
