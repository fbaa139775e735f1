import type { BootVariableChanges, BootVariables } from './boot-variables.js';

/**
 * The bootloader's persistent variables. `write` applies the whole change set or none of it, even across a
 * power cut, so a protocol step that changes several variables can never be seen half done.
 */
export interface BootEnvironment {
  /** Where the variables live, for messages: `file /var/lib/otter/boot-env.json`, `u-boot ...`, `grub ...`. */
  readonly description: string;
  read(): Promise<BootVariables>;
  /** Validates every name and value first (see `assertValidChanges`); refused changes write nothing. */
  write(changes: BootVariableChanges): Promise<void>;
}
