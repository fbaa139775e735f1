import { BootEnvError } from './boot-env.error.js';
import type { LastTrial, Slot, SlotVariables } from './slot-variables.js';

/**
 * What kind of boot the agent is running in, which is what it needs to know after any restart:
 * - `normal`: no trial pending, running the committed slot (or nothing has booted since provisioning).
 * - `trial-scheduled`: a trial is pending but the trial slot has not been booted yet: reboot to start it.
 * - `trial`: running the trial slot: measure, attest, health-check, then `commit()` or `rollback()`.
 * - `rolled-back`: the trial slot was booted as often as allowed and never committed, so the bootloader fell
 *   back to the committed slot: `rollback()` to clear the trial, and report it.
 * - `uncommitted`: no trial pending, but running a slot that is not the committed one (after a rollback in
 *   the trial slot, before the reboot): reboot.
 */
export type BootKind = 'normal' | 'trial-scheduled' | 'trial' | 'rolled-back' | 'uncommitted';

export interface PendingTrial {
  slot: Slot;
  /** Boots since the trial began (the bootloader's count; U-Boot also counts the fall-back boot). */
  bootCount: number;
  bootLimit: number;
}

export interface SlotStatus {
  committed: Slot;
  /** The slot running now; undefined when the bootloader has not recorded any boot yet. */
  booted: Slot | undefined;
  trial: PendingTrial | undefined;
  boot: BootKind;
  lastTrial: LastTrial | undefined;
}

export function slotStatus(variables: SlotVariables, booted: Slot | undefined, source: string): SlotStatus {
  const committed = variables.committed;
  if (committed === undefined) {
    throw new BootEnvError('BOOT_SLOT_NOT_PROVISIONED', `${source} names no committed slot`);
  }
  let trial: PendingTrial | undefined;
  if (variables.upgradeAvailable) {
    if (variables.trialSlot === undefined) {
      throw new BootEnvError(
        'BOOT_ENV_CORRUPT',
        `${source}: upgrade_available is set but no trial slot is named`,
      );
    }
    trial = { slot: variables.trialSlot, bootCount: variables.bootCount, bootLimit: variables.bootLimit };
  }
  return {
    committed,
    booted,
    trial,
    boot: bootKind(committed, booted, trial),
    lastTrial: variables.lastTrial,
  };
}

function bootKind(committed: Slot, booted: Slot | undefined, trial: PendingTrial | undefined): BootKind {
  if (trial === undefined) return booted === undefined || booted === committed ? 'normal' : 'uncommitted';
  if (booted === trial.slot) return 'trial';
  return trial.bootCount >= trial.bootLimit ? 'rolled-back' : 'trial-scheduled';
}
