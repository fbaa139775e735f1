import { constants } from 'node:fs';
import { copyFile, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BootEnvError } from './boot-env.error.js';
import type { BootEnvironment } from './boot-environment.js';
import { assertValidChanges, type BootVariableChanges, type BootVariables } from './boot-variables.js';
import { replaceDurably, siblingTempPath } from './durable-file.js';
import { parseEnvListing } from './env-listing.js';
import { runTool } from './run-tool.js';
import { SerialQueue } from './serial-queue.js';
import { toolError } from './tool-errors.js';

export interface GrubEnvironmentOptions {
  /** The environment block, e.g. `/boot/grub/grubenv`; it must exist (`grub-editenv FILE create`). */
  file: string;
  /** Tool path; by default `grub-editenv` from PATH (Debian package grub-common). */
  grubEditenv?: string;
  timeoutMs?: number;
}

/** grub-editenv's word for a file that is not a 1024-byte GRUB environment block. */
const CORRUPT = /invalid environment block/i;
const PACKAGE = 'grub-common';

/**
 * GRUB's environment block through `grub-editenv FILE list|set|unset`. grub-editenv rewrites the file in
 * place and needs separate calls to set and to unset, so a change set is made on a copy beside the file and
 * renamed over it: GRUB (`load_env`, `save_env`) then finds the old block or the new one, never half of each.
 */
export class GrubEnvironment implements BootEnvironment {
  readonly description: string;
  private readonly file: string;
  private readonly tool: string;
  private readonly timeoutMs: number;
  private readonly queue = new SerialQueue();

  constructor(options: GrubEnvironmentOptions) {
    // Absolute, so that no file name can ever be read by grub-editenv as an option.
    this.file = resolve(options.file);
    this.description = `grub ${this.file}`;
    this.tool = options.grubEditenv ?? 'grub-editenv';
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  read(): Promise<BootVariables> {
    return this.queue.run(async () => {
      await this.assertExists();
      return parseEnvListing(await this.editenv(this.file, ['list']), this.description);
    });
  }

  async write(changes: BootVariableChanges): Promise<void> {
    assertValidChanges(changes);
    const entries = Object.entries(changes);
    const set = entries.flatMap(([name, value]) => (value === null ? [] : [`${name}=${value}`]));
    const unset = entries.flatMap(([name, value]) => (value === null ? [name] : []));
    return this.queue.run(async () => {
      await this.assertExists();
      const temp = siblingTempPath(this.file);
      try {
        await copyFile(this.file, temp, constants.COPYFILE_EXCL);
        if (set.length > 0) await this.editenv(temp, ['set', ...set]);
        if (unset.length > 0) await this.editenv(temp, ['unset', ...unset]);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
      await replaceDurably(temp, this.file);
    });
  }

  /** grub-editenv creates a missing file on `list`; a vanished environment must be an error, not a new one. */
  private async assertExists(): Promise<void> {
    try {
      await stat(this.file);
    } catch (error) {
      throw new BootEnvError(
        'BOOT_ENV_UNAVAILABLE',
        `GRUB environment ${this.file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); ` +
          `create it with \`grub-editenv ${this.file} create\``,
        { file: this.file },
      );
    }
  }

  private async editenv(file: string, args: string[]): Promise<string> {
    const result = await runTool(this.tool, [file, ...args], this.timeoutMs);
    if (!result.ok) throw toolError(result.failure, { corruptWhen: CORRUPT, debianPackage: PACKAGE });
    return result.stdout;
  }
}
