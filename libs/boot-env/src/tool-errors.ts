import { BootEnvError } from './boot-env.error.js';
import type { ToolFailure } from './run-tool.js';

/**
 * Turns a failed bootloader tool into the error the agent acts on: a damaged environment (whose stderr says
 * so) is BOOT_ENV_CORRUPT, everything else, including a missing tool, BOOT_ENV_UNAVAILABLE.
 */
export function toolError(
  failure: ToolFailure,
  options: { corruptWhen: RegExp; debianPackage: string },
): BootEnvError {
  if (failure.notInstalled) {
    return new BootEnvError(
      'BOOT_ENV_UNAVAILABLE',
      `${failure.reason} (Debian package ${options.debianPackage})`,
      { tool: failure.tool },
    );
  }
  const code = options.corruptWhen.test(failure.stderr) ? 'BOOT_ENV_CORRUPT' : 'BOOT_ENV_UNAVAILABLE';
  return new BootEnvError(code, failure.reason, { tool: failure.tool });
}
