import { readFile } from 'node:fs/promises';
import { BootEnvError } from './boot-env.error.js';
import { isSlot, type Slot } from './slot-variables.js';

/**
 * A `bootedSlot` source for real nodes whose bootloader passes the slot on the kernel command line
 * (`otter.slot=b`), which costs no environment write per boot. Absent parameter: unknown.
 */
export function bootedSlotFromKernelCommandLine(
  options: { path?: string; parameter?: string } = {},
): () => Promise<Slot | undefined> {
  const path = options.path ?? '/proc/cmdline';
  const prefix = `${options.parameter ?? 'otter.slot'}=`;
  return async () => {
    const words = (await readFile(path, 'utf8')).trim().split(/\s+/);
    const values = words.filter((word) => word.startsWith(prefix)).map((word) => word.slice(prefix.length));
    if (values.length === 0) return undefined;
    const value = values.at(-1);
    if (!isSlot(value)) {
      throw new BootEnvError('BOOT_ENV_CORRUPT', `${path}: ${prefix}${String(value)} names no slot`);
    }
    return value;
  };
}
