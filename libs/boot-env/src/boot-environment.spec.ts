import { readdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BootVariableChanges } from './boot-variables.js';
import {
  BOOT_ENVIRONMENT_KINDS,
  createScratchBootEnvironment,
  type ScratchBootEnvironment,
} from './testing.js';

describe.each(BOOT_ENVIRONMENT_KINDS)('BootEnvironment contract: %s', (kind) => {
  let scratch: ScratchBootEnvironment;
  afterEach(async () => scratch.remove());

  const fresh = async (): Promise<ScratchBootEnvironment> =>
    (scratch = await createScratchBootEnvironment(kind));

  it('starts blank, applies sets and unsets of one change set together, and a new instance reads the same', async () => {
    const env = (await fresh()).open();
    expect(await env.read()).toEqual({});
    await env.write({ otter_slot: 'a', upgrade_available: '1', bootcount: '0' });
    await env.write({
      otter_slot: 'b',
      upgrade_available: null,
      bootcount: null,
      otter_last_trial: 'b:committed',
    });
    expect(await env.read()).toEqual({ otter_slot: 'b', otter_last_trial: 'b:committed' });
    expect(await scratch.open().read()).toEqual({ otter_slot: 'b', otter_last_trial: 'b:committed' });
  });

  it('removing a variable that is not there is not an error', async () => {
    const env = (await fresh()).open();
    await env.write({ otter_slot: 'a', never_set: null });
    expect(await env.read()).toEqual({ otter_slot: 'a' });
  });

  it('runs concurrent writes of one instance one after another, losing none', async () => {
    const env = (await fresh()).open();
    await Promise.all(Array.from({ length: 6 }, (_, i) => env.write({ [`v${i}`]: String(i) })));
    expect(await env.read()).toEqual({ v0: '0', v1: '1', v2: '2', v3: '3', v4: '4', v5: '5' });
  });

  it.each<[string, BootVariableChanges]>([
    ['a value with a newline that would forge otter_slot', { otter_trial_slot: 'b\notter_slot=b' }],
    ['a value with =', { otter_trial_slot: 'b=otter_slot' }],
    ['a name with =', { 'otter_trial_slot=b\notter_slot': 'b' }],
    ['a name with a space', { 'otter slot': 'b' }],
    ['an empty value (a removal in fw_setenv scripts)', { otter_slot: '' }],
  ])('refuses %s and writes nothing of the change set', async (_what, attack) => {
    const env = (await fresh()).open();
    await env.write({ otter_slot: 'a' });
    const before = await Promise.all(scratch.storage.map((file) => readFile(file)));
    await expect(env.write({ bootcount: '0', ...attack })).rejects.toMatchObject({
      code: 'BOOT_ENV_VARIABLE_INVALID',
    });
    expect(await scratch.open().read()).toEqual({ otter_slot: 'a' });
    const after = await Promise.all(scratch.storage.map((file) => readFile(file)));
    expect(after).toEqual(before);
  });

  it('leaves no temporary files behind', async () => {
    const env = (await fresh()).open();
    for (let i = 0; i < 3; i++) await env.write({ bootcount: String(i) });
    const dir = dirname(scratch.storage[0]!);
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});
