import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileBootEnvironment } from './file-boot-environment.js';

describe('FileBootEnvironment', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'otter-file-env-'));
    file = join(dir, 'boot-env.json');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('writes a versioned JSON document readable by the owner only', async () => {
    await new FileBootEnvironment(file).write({ otter_slot: 'a' });
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      format: 'otter-boot-env/1',
      variables: { otter_slot: 'a' },
    });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['garbage', 'not json at all'],
    ['an empty file', ''],
    [
      'truncated JSON (a write torn without the rename)',
      '{"format": "otter-boot-env/1", "variables": {"otter_',
    ],
    ['another format', JSON.stringify({ format: 'something-else', variables: {} })],
    ['no variables object', JSON.stringify({ format: 'otter-boot-env/1', variables: ['a'] })],
    ['a non-string value', JSON.stringify({ format: 'otter-boot-env/1', variables: { otter_slot: 1 } })],
    [
      'a value with a forged line',
      JSON.stringify({ format: 'otter-boot-env/1', variables: { note: 'x\notter_slot=b' } }),
    ],
    ['a name with =', JSON.stringify({ format: 'otter-boot-env/1', variables: { 'otter_slot=b': 'a' } })],
  ])('refuses %s for reading and writing, and leaves it as it was', async (_what, contents) => {
    await writeFile(file, contents);
    const env = new FileBootEnvironment(file);
    await expect(env.read()).rejects.toMatchObject({
      code: 'BOOT_ENV_CORRUPT',
      message: expect.stringContaining(file),
    });
    await expect(env.write({ otter_slot: 'a' })).rejects.toMatchObject({ code: 'BOOT_ENV_CORRUPT' });
    expect(await readFile(file, 'utf8')).toBe(contents);
  });

  it('reports an unreadable path as unavailable, not as blank', async () => {
    await expect(new FileBootEnvironment(dir).read()).rejects.toMatchObject({ code: 'BOOT_ENV_UNAVAILABLE' });
  });
});
