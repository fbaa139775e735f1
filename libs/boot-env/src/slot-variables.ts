import { BootEnvError } from './boot-env.error.js';
import type { BootVariables } from './boot-variables.js';

export type Slot = 'a' | 'b';

export function isSlot(value: unknown): value is Slot {
  return value === 'a' || value === 'b';
}

export function otherSlot(slot: Slot): Slot {
  return slot === 'a' ? 'b' : 'a';
}

/**
 * The variables of the A/B protocol. `upgrade_available`, `bootcount` and `bootlimit` are U-Boot's own
 * (CONFIG_BOOTCOUNT_ENV: while `upgrade_available` is non-zero every boot increments `bootcount`, and once
 * `bootcount` exceeds `bootlimit` U-Boot runs `altbootcmd`); the `otter_` ones say which slot is which.
 */
export const SLOT_VARIABLES = {
  /** The committed slot: what the bootloader boots when no trial is pending or the trial is used up. */
  committedSlot: 'otter_slot',
  /** The slot on trial while `upgrade_available` is set. */
  trialSlot: 'otter_trial_slot',
  /** `1` while a trial is pending; removed by commit and rollback. */
  upgradeAvailable: 'upgrade_available',
  /** Boots since the trial began, counted by the bootloader. */
  bootCount: 'bootcount',
  /** Boots the trial slot gets; `1` is try-once. */
  bootLimit: 'bootlimit',
  /** The slot the bootloader started last, recorded by the bootloader (the simulated one does). */
  bootedSlot: 'otter_booted_slot',
  /** How the last trial ended: `SLOT:committed` or `SLOT:rolled-back:REASON`, kept until the next one. */
  lastTrial: 'otter_last_trial',
} as const;

export const DEFAULT_BOOT_LIMIT = 1;

export type TrialOutcome = 'committed' | 'rolled-back';

export interface LastTrial {
  slot: Slot;
  outcome: TrialOutcome;
  reason?: string;
}

/** What the protocol's variables say, checked but not yet interpreted. */
export interface SlotVariables {
  committed: Slot | undefined;
  upgradeAvailable: boolean;
  trialSlot: Slot | undefined;
  bootCount: number;
  bootLimit: number;
  bootedSlot: Slot | undefined;
  lastTrial: LastTrial | undefined;
}

/** Rollback reasons are tokens, like every value Otter writes: `health-check-failed`, `attestation-failed`. */
export const ROLLBACK_REASON = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const COUNT = /^[0-9]{1,9}$/;

export function readSlotVariables(variables: BootVariables, source: string): SlotVariables {
  const get = (name: string): string | undefined =>
    Object.hasOwn(variables, name) ? variables[name] : undefined;
  const corrupt = (name: string): BootEnvError =>
    new BootEnvError(
      'BOOT_ENV_CORRUPT',
      `${source}: boot variable ${name}=${JSON.stringify(get(name))} is not a valid value`,
      { name },
    );
  const slot = (name: string): Slot | undefined => {
    const value = get(name);
    if (value === undefined || isSlot(value)) return value;
    throw corrupt(name);
  };
  const count = (name: string, fallback: number): number => {
    const value = get(name);
    if (value === undefined) return fallback;
    if (!COUNT.test(value)) throw corrupt(name);
    return Number(value);
  };
  const lastTrial = (): LastTrial | undefined => {
    const value = get(SLOT_VARIABLES.lastTrial);
    if (value === undefined) return undefined;
    const [slotName, outcome, reason, ...rest] = value.split(':');
    if (!isSlot(slotName) || rest.length > 0) throw corrupt(SLOT_VARIABLES.lastTrial);
    if (outcome === 'committed' && reason === undefined) return { slot: slotName, outcome };
    if (outcome === 'rolled-back' && reason !== undefined && ROLLBACK_REASON.test(reason)) {
      return { slot: slotName, outcome, reason };
    }
    throw corrupt(SLOT_VARIABLES.lastTrial);
  };
  return {
    committed: slot(SLOT_VARIABLES.committedSlot),
    upgradeAvailable: count(SLOT_VARIABLES.upgradeAvailable, 0) !== 0,
    trialSlot: slot(SLOT_VARIABLES.trialSlot),
    bootCount: count(SLOT_VARIABLES.bootCount, 0),
    bootLimit: count(SLOT_VARIABLES.bootLimit, DEFAULT_BOOT_LIMIT),
    bootedSlot: slot(SLOT_VARIABLES.bootedSlot),
    lastTrial: lastTrial(),
  };
}
