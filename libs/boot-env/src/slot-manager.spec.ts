import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BootVariableChanges } from './boot-variables.js';
import { bootedSlotFromKernelCommandLine } from './booted-slot.js';
import { FileBootEnvironment } from './file-boot-environment.js';
import { SimulatedBootloader } from './simulated-bootloader.js';
import { SlotManager } from './slot-manager.js';
import type { Slot } from './slot-variables.js';

describe('SlotManager on hostile or odd environments', () => {
  let dir: string;
  let env: FileBootEnvironment;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'otter-slots-'));
    env = new FileBootEnvironment(join(dir, 'boot-env.json'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it.each<[string, BootVariableChanges]>([
    ['a committed slot that is no slot', { otter_slot: 'c' }],
    ['a trial slot that is no slot', { otter_slot: 'a', otter_trial_slot: 'a/../b' }],
    [
      'a non-numeric boot count',
      { otter_slot: 'a', upgrade_available: '1', otter_trial_slot: 'b', bootcount: 'x' },
    ],
    ['a negative boot limit', { otter_slot: 'a', bootlimit: '-1' }],
    ['a pending trial without a trial slot', { otter_slot: 'a', upgrade_available: '1' }],
    ['a malformed last trial', { otter_slot: 'a', otter_last_trial: 'b:rolled-back' }],
    ['a booted slot that is no slot', { otter_slot: 'a', otter_booted_slot: 'ab' }],
  ])('refuses %s as corrupt rather than guessing', async (_what, variables) => {
    await env.write(variables);
    await expect(new SlotManager(env).status()).rejects.toMatchObject({ code: 'BOOT_ENV_CORRUPT' });
  });

  it('refuses a trial of something that is not a slot', async () => {
    const manager = new SlotManager(env);
    await manager.ensureProvisioned('a');
    const notASlot = JSON.parse('"b\\notter_slot=b"') as Slot;
    await expect(manager.beginTrial(notASlot)).rejects.toMatchObject({ code: 'BOOT_ENV_VARIABLE_INVALID' });
    expect(await env.read()).toEqual({ otter_slot: 'a' });
  });

  it('reads U-Boot style counters it did not write (upgrade_available=0 is no trial)', async () => {
    await env.write({ otter_slot: 'b', upgrade_available: '0', bootcount: '7', bootlimit: '3' });
    expect(await new SlotManager(env).status()).toMatchObject({
      committed: 'b',
      boot: 'normal',
      trial: undefined,
    });
  });

  it('takes the booted slot from the kernel command line when told to', async () => {
    const cmdline = join(dir, 'cmdline');
    const manager = new SlotManager(env, { bootedSlot: bootedSlotFromKernelCommandLine({ path: cmdline }) });
    await writeFile(cmdline, 'console=ttyS0 otter.slot=a\n');
    await manager.ensureProvisioned('a');
    await manager.beginTrial('b');
    await writeFile(cmdline, 'console=ttyS0 root=/dev/mmcblk0p3 otter.slot=b rootwait\n');
    expect(await manager.status()).toMatchObject({ booted: 'b', boot: 'trial' });
    await writeFile(cmdline, 'console=ttyS0 otter.slot=a\n');
    expect(await manager.status()).toMatchObject({ booted: 'a', boot: 'trial-scheduled' });
    await writeFile(cmdline, 'console=ttyS0\n');
    expect(await manager.status()).toMatchObject({ booted: undefined, boot: 'trial-scheduled' });
    await writeFile(cmdline, 'otter.slot=c\n');
    await expect(manager.status()).rejects.toMatchObject({ code: 'BOOT_ENV_CORRUPT' });
  });

  it('the simulated bootloader records each boot in one write with the count', async () => {
    const manager = new SlotManager(env);
    await manager.ensureProvisioned('a');
    await manager.beginTrial('b');
    const bootloader = new SimulatedBootloader(env);
    await bootloader.powerOn();
    expect(await env.read()).toEqual({
      otter_slot: 'a',
      otter_trial_slot: 'b',
      upgrade_available: '1',
      bootcount: '1',
      bootlimit: '1',
      otter_booted_slot: 'b',
    });
  });
});
