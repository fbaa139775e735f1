import { CommanderError, InvalidArgumentError, type Command } from 'commander';

/** Exit code of a command line the user got wrong (bad option value, missing option), as opposed to 1: failed. */
export const USAGE_EXIT_CODE = 2;

/**
 * Makes every usage error of `command`, and of the subcommands added to it afterwards, exit with
 * USAGE_EXIT_CODE: commander's own (unknown or missing option) and those our option parsers throw
 * (`InvalidArgumentError`).
 */
export function exitWithUsageCode(command: Command): Command {
  return command.exitOverride((e) => {
    throw e.exitCode === 1 ? new CommanderError(USAGE_EXIT_CODE, e.code, e.message) : e;
  });
}

/** A usage error found after parsing (options that conflict): printed like commander's own, exit code 2. */
export function usageError(command: Command, message: string): never {
  return command.error(`error: ${message}`, { exitCode: USAGE_EXIT_CODE, code: 'otter.usage' });
}

/** Runs a check that throws commander's InvalidArgumentError (rollout-args.ts) as a usage error of `command`. */
export function checkUsage<T>(command: Command, check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof InvalidArgumentError) usageError(command, e.message);
    throw e;
  }
}
