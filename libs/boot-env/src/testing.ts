import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BootEnvironment } from './boot-environment.js';
import { FileBootEnvironment } from './file-boot-environment.js';
import { GrubEnvironment } from './grub-environment.js';
import { UBootEnvironment } from './u-boot-environment.js';

const run = promisify(execFile);

export type BootEnvironmentKind = 'file' | 'u-boot' | 'grub';

export interface ScratchBootEnvironment {
  kind: BootEnvironmentKind;
  /** The files that hold the variables (the U-Boot one has two redundant copies). */
  storage: string[];
  /** The generated `fw_env.config` of a `u-boot` environment. */
  configFile?: string;
  /** A new instance over the same storage: what an agent restarted at this point would open. */
  open(): BootEnvironment;
  remove(): Promise<void>;
}

/** U-Boot's environment size used here: a common `CONFIG_ENV_SIZE`. */
const UBOOT_ENV_SIZE = '0x4000';

/**
 * A blank environment of the given kind in a new temporary directory, made with the real tools: a redundant
 * U-Boot environment (`mkenvimage -r`, two copies named in a generated `fw_env.config`) or a GRUB block
 * (`grub-editenv FILE create`).
 */
export async function createScratchBootEnvironment(
  kind: BootEnvironmentKind,
): Promise<ScratchBootEnvironment> {
  const dir = await mkdtemp(join(tmpdir(), `otter-boot-env-${kind}-`));
  const remove = () => rm(dir, { recursive: true, force: true });
  if (kind === 'file') {
    const file = join(dir, 'boot-env.json');
    return { kind, storage: [file], open: () => new FileBootEnvironment(file), remove };
  }
  if (kind === 'grub') {
    const file = join(dir, 'grubenv');
    await run('grub-editenv', [file, 'create']);
    return { kind, storage: [file], open: () => new GrubEnvironment({ file }), remove };
  }
  const empty = join(dir, 'initial-env.txt');
  const copies = [join(dir, 'uboot-env-1.bin'), join(dir, 'uboot-env-2.bin')];
  const configFile = join(dir, 'fw_env.config');
  await writeFile(empty, '');
  for (const copy of copies) await run('mkenvimage', ['-r', '-s', UBOOT_ENV_SIZE, '-o', copy, empty]);
  await writeFile(configFile, copies.map((copy) => `${copy} 0x0 ${UBOOT_ENV_SIZE}\n`).join(''));
  return { kind, storage: copies, configFile, open: () => new UBootEnvironment({ configFile }), remove };
}

export const BOOT_ENVIRONMENT_KINDS: readonly BootEnvironmentKind[] = ['file', 'u-boot', 'grub'];
