import { BootEnvError } from './boot-env.error.js';
import type { BootEnvironment } from './boot-environment.js';
import { readSlotVariables, SLOT_VARIABLES as V, type Slot } from './slot-variables.js';

/**
 * What the bootloader does at power-on, for tests and the demo where nothing really reboots. It follows
 * U-Boot's bootcount rules: while a trial is pending every boot increments `bootcount`; the trial slot boots
 * while `bootcount` has not passed `bootlimit`, the committed slot after that. It records the booted slot in
 * `otter_booted_slot`, in the same write as the count.
 */
export class SimulatedBootloader {
  constructor(private readonly env: BootEnvironment) {}

  /** One power-on: picks a slot, records the boot, returns the slot that "runs" now. */
  async powerOn(): Promise<Slot> {
    const variables = readSlotVariables(await this.env.read(), this.env.description);
    if (variables.committed === undefined) {
      throw new BootEnvError('BOOT_SLOT_NOT_PROVISIONED', `${this.env.description} names no slot to boot`);
    }
    let booted = variables.committed;
    const changes: Record<string, string> = {};
    if (variables.upgradeAvailable) {
      const bootCount = variables.bootCount + 1;
      changes[V.bootCount] = String(bootCount);
      if (variables.trialSlot !== undefined && bootCount <= variables.bootLimit) booted = variables.trialSlot;
    }
    changes[V.bootedSlot] = booted;
    await this.env.write(changes);
    return booted;
  }
}
