import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBootloader } from './simulated-bootloader.js';
import { SlotManager } from './slot-manager.js';
import type { SlotStatus } from './slot-status.js';
import {
  BOOT_ENVIRONMENT_KINDS,
  createScratchBootEnvironment,
  type ScratchBootEnvironment,
} from './testing.js';

/**
 * The A/B protocol end to end on each real environment. Every step opens a new environment, manager and
 * bootloader, as an agent restarted between any two steps would, and checks that two fresh managers agree.
 */
describe.each(BOOT_ENVIRONMENT_KINDS)('A/B slot protocol on %s', (kind) => {
  let scratch: ScratchBootEnvironment;
  afterEach(async () => scratch?.remove());

  const manager = () => new SlotManager(scratch.open());
  const powerOn = () => new SimulatedBootloader(scratch.open()).powerOn();
  /** Status as a restarted agent reads it; a second restart must read exactly the same. */
  const status = async (): Promise<SlotStatus> => {
    const first = await manager().status();
    expect(await manager().status()).toEqual(first);
    return first;
  };
  /** A provisioned node, booted once into slot a. */
  const node = async (): Promise<void> => {
    scratch = await createScratchBootEnvironment(kind);
    await manager().ensureProvisioned('a');
    expect(await powerOn()).toBe('a');
  };

  it('provisions a blank environment once and boots the committed slot', async () => {
    scratch = await createScratchBootEnvironment(kind);
    await expect(manager().status()).rejects.toMatchObject({ code: 'BOOT_SLOT_NOT_PROVISIONED' });
    await expect(powerOn()).rejects.toMatchObject({ code: 'BOOT_SLOT_NOT_PROVISIONED' });
    expect(await manager().ensureProvisioned('a')).toMatchObject({
      committed: 'a',
      booted: undefined,
      boot: 'normal',
    });
    expect(await manager().ensureProvisioned('b')).toMatchObject({ committed: 'a' });
    expect(await powerOn()).toBe('a');
    expect(await status()).toEqual({
      committed: 'a',
      booted: 'a',
      trial: undefined,
      boot: 'normal',
      lastTrial: undefined,
    });
    expect(await manager().inactiveSlot()).toBe('b');
  });

  it('trial → healthy → commit: the trial slot becomes the committed one', async () => {
    await node();
    expect(await manager().beginTrial('b')).toMatchObject({
      boot: 'trial-scheduled',
      trial: { slot: 'b', bootCount: 0, bootLimit: 1 },
    });
    expect(await status()).toMatchObject({ boot: 'trial-scheduled', booted: 'a', committed: 'a' });
    // The agent restarted before the reboot and repeats its step: nothing changes.
    expect(await manager().beginTrial('b')).toMatchObject({
      boot: 'trial-scheduled',
      trial: { bootCount: 0 },
    });

    expect(await powerOn()).toBe('b');
    expect(await status()).toMatchObject({
      boot: 'trial',
      booted: 'b',
      committed: 'a',
      trial: { slot: 'b', bootCount: 1, bootLimit: 1 },
    });
    await expect(manager().inactiveSlot()).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });

    expect(await manager().commit()).toEqual({
      committed: 'b',
      booted: 'b',
      trial: undefined,
      boot: 'normal',
      lastTrial: { slot: 'b', outcome: 'committed' },
    });
    // The agent restarted after committing and commits again: nothing changes.
    expect(await manager().commit()).toMatchObject({ committed: 'b', boot: 'normal' });
    expect(await status()).toMatchObject({ committed: 'b', boot: 'normal' });

    expect(await powerOn()).toBe('b');
    expect(await powerOn()).toBe('b');
    expect(await status()).toMatchObject({ committed: 'b', booted: 'b', boot: 'normal' });
    expect(await manager().inactiveSlot()).toBe('a');
  });

  it('trial → health check fails → rollback: the committed slot stays and boots next', async () => {
    await node();
    await manager().beginTrial('b');
    expect(await powerOn()).toBe('b');
    expect(await status()).toMatchObject({ boot: 'trial' });

    expect(await manager().rollback('health-check-failed')).toEqual({
      committed: 'a',
      booted: 'b',
      trial: undefined,
      boot: 'uncommitted',
      lastTrial: { slot: 'b', outcome: 'rolled-back', reason: 'health-check-failed' },
    });
    // Restarted before the reboot: the state says reboot, and repeating the rollback changes nothing.
    expect(await manager().rollback('health-check-failed')).toMatchObject({ boot: 'uncommitted' });
    await expect(manager().commit()).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });
    await expect(manager().beginTrial('b')).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });
    await expect(manager().inactiveSlot()).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });

    expect(await powerOn()).toBe('a');
    expect(await status()).toMatchObject({
      committed: 'a',
      booted: 'a',
      boot: 'normal',
      lastTrial: { slot: 'b', outcome: 'rolled-back', reason: 'health-check-failed' },
    });
    expect(await manager().inactiveSlot()).toBe('b');
  });

  it('a trial slot that never comes up: the bootloader falls back, and the agent sees a rolled-back boot', async () => {
    await node();
    await manager().beginTrial('b');
    expect(await powerOn()).toBe('b');
    // The trial kernel hangs before the agent runs; the watchdog resets the node.
    expect(await powerOn()).toBe('a');
    expect(await status()).toMatchObject({
      committed: 'a',
      booted: 'a',
      boot: 'rolled-back',
      trial: { slot: 'b', bootCount: 2, bootLimit: 1 },
    });
    await expect(manager().commit()).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });

    expect(await manager().rollback('trial-boot-failed')).toMatchObject({
      committed: 'a',
      booted: 'a',
      boot: 'normal',
      trial: undefined,
      lastTrial: { slot: 'b', outcome: 'rolled-back', reason: 'trial-boot-failed' },
    });
    expect(await powerOn()).toBe('a');
    expect(await status()).toMatchObject({ boot: 'normal', committed: 'a' });
  });

  it('a boot limit of 2 gives the trial slot two boots before the fall-back', async () => {
    await node();
    await manager().beginTrial('b', { bootLimit: 2 });
    expect(await powerOn()).toBe('b');
    expect(await powerOn()).toBe('b');
    expect(await status()).toMatchObject({ boot: 'trial', trial: { bootCount: 2, bootLimit: 2 } });
    expect(await powerOn()).toBe('a');
    expect(await status()).toMatchObject({ boot: 'rolled-back' });
  });

  it('a trial can be cancelled before the reboot', async () => {
    await node();
    await manager().beginTrial('b');
    expect(await manager().rollback('cancelled')).toMatchObject({ boot: 'normal', trial: undefined });
    expect(await powerOn()).toBe('a');
  });

  it('refuses steps that do not fit the state', async () => {
    await node();
    await expect(manager().commit()).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });
    await expect(manager().rollback('health-check-failed')).rejects.toMatchObject({
      code: 'BOOT_SLOT_CONFLICT',
    });
    await expect(manager().beginTrial('a')).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });
    await expect(manager().beginTrial('b', { bootLimit: 0 })).rejects.toMatchObject({
      code: 'BOOT_ENV_VARIABLE_INVALID',
    });
    await manager().beginTrial('b');
    await expect(manager().beginTrial('b', { bootLimit: 3 })).resolves.toMatchObject({
      trial: { bootLimit: 1 },
    });
    await expect(manager().commit()).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });
    expect(await powerOn()).toBe('b');
    await expect(manager().beginTrial('a')).rejects.toMatchObject({ code: 'BOOT_SLOT_CONFLICT' });
  });

  it.each([['health check failed'], ['x\notter_slot=b'], ['a:b'], ['reason=1'], ['']])(
    'refuses the rollback reason %j and keeps the trial',
    async (reason) => {
      await node();
      await manager().beginTrial('b');
      await expect(manager().rollback(reason)).rejects.toMatchObject({ code: 'BOOT_ENV_VARIABLE_INVALID' });
      expect(await status()).toMatchObject({ boot: 'trial-scheduled', trial: { slot: 'b' } });
    },
  );
});
