import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootEnvError } from './boot-env.error.js';
import type { BootEnvironment } from './boot-environment.js';
import { assertValidChanges, type BootVariableChanges, type BootVariables } from './boot-variables.js';
import { parseEnvListing } from './env-listing.js';
import { runTool } from './run-tool.js';
import { SerialQueue } from './serial-queue.js';
import { toolError } from './tool-errors.js';

export interface UBootEnvironmentOptions {
  /** `fw_env.config` to pass as `-c`; without it the tools read `/etc/fw_env.config`. */
  configFile?: string;
  /** Tool paths; by default `fw_printenv` and `fw_setenv` from PATH (Debian package libubootenv-tool). */
  fwPrintenv?: string;
  fwSetenv?: string;
  timeoutMs?: number;
}

/** libubootenv's words for an environment whose CRC fails in every copy. */
const CORRUPT = /Cannot read environment/i;
const PACKAGE = 'libubootenv-tool';

/**
 * U-Boot's environment through libubootenv's `fw_printenv`/`fw_setenv`. A change set goes in as one
 * `fw_setenv -s SCRIPT` call, which the library stores in one write of the environment; with a redundant
 * environment (two copies in `fw_env.config`) it writes the inactive copy and flips the flag, so a power cut
 * leaves the old or the new environment. A damaged environment is refused: no default environment is passed,
 * so the tools never silently replace it.
 */
export class UBootEnvironment implements BootEnvironment {
  readonly description: string;
  private readonly timeoutMs: number;
  private readonly queue = new SerialQueue();

  constructor(private readonly options: UBootEnvironmentOptions = {}) {
    this.description = `u-boot ${options.configFile ?? '/etc/fw_env.config'}`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  read(): Promise<BootVariables> {
    return this.queue.run(() => this.load());
  }

  async write(changes: BootVariableChanges): Promise<void> {
    assertValidChanges(changes);
    return this.queue.run(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'otter-fw-setenv-'));
      try {
        const script = join(dir, 'changes');
        // `name=` removes the variable in a libubootenv script.
        const lines = Object.entries(changes).map(([name, value]) => `${name}=${value ?? ''}\n`);
        await writeFile(script, lines.join(''), { mode: 0o600 });
        const result = await runTool(
          this.options.fwSetenv ?? 'fw_setenv',
          [...this.configArgs(), '-s', script],
          this.timeoutMs,
        );
        if (!result.ok) throw toolError(result.failure, { corruptWhen: CORRUPT, debianPackage: PACKAGE });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      await this.confirm(changes);
    });
  }

  /**
   * fw_setenv exits 0 even when it skipped a variable (a `.flags` read-only one, for instance); reading back
   * turns that into an error instead of a protocol step that silently did not happen.
   */
  private async confirm(changes: BootVariableChanges): Promise<void> {
    const stored = await this.load();
    for (const [name, value] of Object.entries(changes)) {
      if ((Object.hasOwn(stored, name) ? stored[name] : null) !== value) {
        throw new BootEnvError(
          'BOOT_ENV_UNAVAILABLE',
          `fw_setenv did not store ${name} in ${this.description}`,
          {
            name,
          },
        );
      }
    }
  }

  private async load(): Promise<BootVariables> {
    const result = await runTool(this.options.fwPrintenv ?? 'fw_printenv', this.configArgs(), this.timeoutMs);
    if (!result.ok) throw toolError(result.failure, { corruptWhen: CORRUPT, debianPackage: PACKAGE });
    return parseEnvListing(result.stdout, this.description);
  }

  private configArgs(): string[] {
    return this.options.configFile ? ['-c', this.options.configFile] : [];
  }
}
