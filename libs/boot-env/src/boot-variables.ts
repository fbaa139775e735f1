import { BootEnvError } from './boot-env.error.js';

/** Every variable of a boot environment as its storage holds it, including ones Otter did not write. */
export type BootVariables = Readonly<Record<string, string>>;

/** One atomic change set: a string sets the variable, `null` removes it. */
export type BootVariableChanges = Readonly<Record<string, string | null>>;

/**
 * Names Otter writes: what U-Boot, GRUB and a shell all take as a plain identifier. A name with `=`, a space
 * or a newline would let one variable forge another in the `name=value` text every tool reads back.
 */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Values Otter writes are tokens. Bootloader scripts expand them (`${otter_slot}`), so no whitespace, no
 * newline, no `=`, no quoting or expansion characters; and never empty, because U-Boot's `fw_setenv -s`
 * script treats `name=` as a removal, which would make "empty" mean different things per environment.
 */
const VALUE = /^[A-Za-z0-9._:+@,/-]{1,255}$/;

export function isValidVariableName(name: string): boolean {
  return NAME.test(name);
}

export function isValidVariableValue(value: string): boolean {
  return VALUE.test(value);
}

/** Refuses the whole change set if any name or value breaks the rules; nothing is written then. */
export function assertValidChanges(changes: BootVariableChanges): void {
  const names = Object.keys(changes);
  if (names.length === 0) throw new BootEnvError('BOOT_ENV_VARIABLE_INVALID', 'empty change set');
  for (const name of names) {
    if (!isValidVariableName(name)) {
      throw new BootEnvError(
        'BOOT_ENV_VARIABLE_INVALID',
        `invalid boot variable name ${JSON.stringify(name)}`,
      );
    }
    const value = changes[name];
    if (value !== null && (typeof value !== 'string' || !isValidVariableValue(value))) {
      throw new BootEnvError(
        'BOOT_ENV_VARIABLE_INVALID',
        `invalid value for boot variable ${name}: ${JSON.stringify(value)}`,
        { name },
      );
    }
  }
}

/** A Map in between, so that a variable called `__proto__` stays a variable. */
export function applyChanges(current: BootVariables, changes: BootVariableChanges): BootVariables {
  const next = new Map(Object.entries(current));
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) next.delete(name);
    else next.set(name, value);
  }
  return Object.fromEntries(next);
}
