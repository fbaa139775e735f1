import { BootEnvError } from './boot-env.error.js';
import type { BootEnvironment } from './boot-environment.js';
import { slotStatus, type SlotStatus } from './slot-status.js';
import {
  DEFAULT_BOOT_LIMIT,
  isSlot,
  otherSlot,
  readSlotVariables,
  ROLLBACK_REASON,
  SLOT_VARIABLES as V,
  type Slot,
} from './slot-variables.js';

export interface SlotManagerOptions {
  /**
   * Where the running slot is learnt. By default the `otter_booted_slot` variable the bootloader records;
   * a real node may read its kernel command line instead (`bootedSlotFromKernelCommandLine`).
   */
  bootedSlot?: () => Promise<Slot | undefined>;
}

/** The largest boot limit accepted: a trial is a handful of attempts, not a retry loop. */
const MAX_BOOT_LIMIT = 10;

/**
 * The agent's side of the A/B protocol. Every step is one atomic write of the boot environment and keeps no
 * state in memory, so an agent restarted at any point reads where it is from `status()`; repeating a step
 * that already happened (commit after commit, rollback after rollback, the same beginTrial) changes nothing.
 */
export class SlotManager {
  constructor(
    private readonly env: BootEnvironment,
    private readonly options: SlotManagerOptions = {},
  ) {}

  async status(): Promise<SlotStatus> {
    const variables = readSlotVariables(await this.env.read(), this.env.description);
    const booted = this.options.bootedSlot ? await this.options.bootedSlot() : variables.bootedSlot;
    return slotStatus(variables, booted, this.env.description);
  }

  /** Names the committed slot of a blank environment; an environment that names one is left alone. */
  async ensureProvisioned(initial: Slot = 'a'): Promise<SlotStatus> {
    const variables = readSlotVariables(await this.env.read(), this.env.description);
    if (variables.committed === undefined) await this.env.write({ [V.committedSlot]: initial });
    return this.status();
  }

  /** The slot an update may be written to: never the committed one, never the one running. */
  async inactiveSlot(): Promise<Slot> {
    const status = await this.status();
    if (status.booted !== undefined && status.booted !== status.committed) {
      throw this.conflict(status, 'the running slot is not the committed one; reboot into it first');
    }
    return otherSlot(status.committed);
  }

  /** The next boot tries `slot`, `bootLimit` times at most, before the bootloader falls back. */
  async beginTrial(slot: Slot, options: { bootLimit?: number } = {}): Promise<SlotStatus> {
    if (!isSlot(slot)) throw new BootEnvError('BOOT_ENV_VARIABLE_INVALID', `${String(slot)} is not a slot`);
    const bootLimit = options.bootLimit ?? DEFAULT_BOOT_LIMIT;
    if (!Number.isInteger(bootLimit) || bootLimit < 1 || bootLimit > MAX_BOOT_LIMIT) {
      throw new BootEnvError('BOOT_ENV_VARIABLE_INVALID', `boot limit must be 1..${MAX_BOOT_LIMIT}`);
    }
    const status = await this.status();
    if (status.boot === 'trial-scheduled' && status.trial?.slot === slot && status.trial.bootCount === 0) {
      return status;
    }
    if (status.boot !== 'normal') throw this.conflict(status, `cannot begin a trial of slot ${slot}`);
    if (slot === status.committed) throw this.conflict(status, `slot ${slot} is the committed slot`);
    await this.env.write({
      [V.trialSlot]: slot,
      [V.upgradeAvailable]: '1',
      [V.bootCount]: '0',
      [V.bootLimit]: String(bootLimit),
    });
    return this.status();
  }

  /** The trial slot, running now, becomes the committed slot. */
  async commit(): Promise<SlotStatus> {
    const status = await this.status();
    if (status.boot === 'trial' && status.trial) {
      await this.env.write({
        ...this.clearTrial(),
        [V.committedSlot]: status.trial.slot,
        [V.lastTrial]: `${status.trial.slot}:committed`,
      });
      return this.status();
    }
    const last = status.lastTrial;
    if (status.boot === 'normal' && last?.outcome === 'committed' && last.slot === status.committed) {
      return status;
    }
    throw this.conflict(status, 'only a running trial slot can be committed');
  }

  /**
   * Ends the pending trial without committing: the committed slot stays. In the trial slot the node must
   * then reboot (`uncommitted`); after a fall-back boot (`rolled-back`) it is already where it belongs.
   */
  async rollback(reason: string): Promise<SlotStatus> {
    if (!ROLLBACK_REASON.test(reason)) {
      throw new BootEnvError(
        'BOOT_ENV_VARIABLE_INVALID',
        `rollback reason must match ${String(ROLLBACK_REASON)}`,
      );
    }
    const status = await this.status();
    if (status.trial) {
      await this.env.write({
        ...this.clearTrial(),
        [V.lastTrial]: `${status.trial.slot}:rolled-back:${reason}`,
      });
      return this.status();
    }
    if (status.lastTrial?.outcome === 'rolled-back') return status;
    throw this.conflict(status, 'no trial is pending');
  }

  private clearTrial(): Record<string, null> {
    return { [V.trialSlot]: null, [V.upgradeAvailable]: null, [V.bootCount]: null };
  }

  private conflict(status: SlotStatus, message: string): BootEnvError {
    return new BootEnvError(
      'BOOT_SLOT_CONFLICT',
      `${message} (boot: ${status.boot}, committed: ${status.committed})`,
      {
        boot: status.boot,
        committed: status.committed,
        booted: status.booted,
        trialSlot: status.trial?.slot,
      },
    );
  }
}
