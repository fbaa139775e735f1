import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createScratchBootEnvironment, type ScratchBootEnvironment } from './testing.js';
import { UBootEnvironment } from './u-boot-environment.js';

const run = promisify(execFile);

describe('UBootEnvironment (fw_printenv/fw_setenv on a redundant file-backed environment)', () => {
  let scratch: ScratchBootEnvironment;
  let configFile: string;
  beforeEach(async () => {
    scratch = await createScratchBootEnvironment('u-boot');
    configFile = scratch.configFile!;
  });
  afterEach(async () => scratch.remove());

  /** Another writer of the environment (U-Boot's own `setenv`, an installer): fw_setenv with argv. */
  const foreignSet = (name: string, value: string) => run('fw_setenv', ['-c', configFile, name, value]);

  it('reads and keeps variables Otter did not write, spaces and = included', async () => {
    await foreignSet('bootargs', 'console=ttyS0,115200 root=/dev/mmcblk0p2 ro');
    const env = scratch.open();
    await env.write({ otter_slot: 'a' });
    expect(await env.read()).toEqual({
      bootargs: 'console=ttyS0,115200 root=/dev/mmcblk0p2 ro',
      otter_slot: 'a',
    });
  });

  it('writes one copy per change set, so a torn write leaves the previous environment whole', async () => {
    const env = scratch.open();
    await env.write({ otter_slot: 'a' });
    const before = await Promise.all(scratch.storage.map((file) => readFile(file)));
    await env.write({ otter_slot: 'b', upgrade_available: '1', bootcount: '0' });
    const after = await Promise.all(scratch.storage.map((file) => readFile(file)));
    const written = after.findIndex((copy, i) => !copy.equals(before[i]!));
    expect(after.filter((copy, i) => !copy.equals(before[i]!))).toHaveLength(1);
    // Power cut in the middle of that write: the copy's entries (after u32 CRC and u8 flag) are half old.
    const torn = Buffer.from(after[written]!);
    torn.fill(0xff, 5, 40);
    await writeFile(scratch.storage[written]!, torn);
    expect(await scratch.open().read()).toEqual({ otter_slot: 'a' });
  });

  it('refuses an environment whose every copy is damaged, and does not replace it', async () => {
    await scratch.open().write({ otter_slot: 'a' });
    for (const file of scratch.storage) {
      const bytes = await readFile(file);
      bytes.fill(0x00, 0, 64);
      await writeFile(file, bytes);
    }
    const damaged = await Promise.all(scratch.storage.map((file) => readFile(file)));
    await expect(scratch.open().read()).rejects.toMatchObject({ code: 'BOOT_ENV_CORRUPT' });
    await expect(scratch.open().write({ otter_slot: 'b' })).rejects.toMatchObject({
      code: 'BOOT_ENV_CORRUPT',
    });
    expect(await Promise.all(scratch.storage.map((file) => readFile(file)))).toEqual(damaged);
  });

  it('refuses a listing in which a foreign value forges a line of an existing variable', async () => {
    await scratch.open().write({ otter_slot: 'a' });
    // fw_setenv with argv stores the newline; fw_printenv prints it raw.
    await foreignSet('note', 'hello\notter_slot=b');
    await expect(scratch.open().read()).rejects.toMatchObject({ code: 'BOOT_ENV_CORRUPT' });
  });

  it('names the Debian package when the tool is missing', async () => {
    const env = new UBootEnvironment({ configFile, fwPrintenv: '/nonexistent/fw_printenv' });
    await expect(env.read()).rejects.toMatchObject({
      code: 'BOOT_ENV_UNAVAILABLE',
      message: expect.stringContaining('libubootenv-tool'),
    });
  });

  it('reports a missing fw_env.config as unavailable', async () => {
    const env = new UBootEnvironment({ configFile: `${configFile}.missing` });
    await expect(env.read()).rejects.toMatchObject({ code: 'BOOT_ENV_UNAVAILABLE' });
  });
});
