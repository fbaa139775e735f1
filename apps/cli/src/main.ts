import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ApiError } from '#otter/api-client';
import { processCliContext, terminalSafeContext, type CliContext } from './cli-context.js';
import { registerDeltaCommands } from './commands/delta.command.js';
import { registerNodeCommands } from './commands/node.command.js';
import { registerReleaseCommands } from './commands/release.command.js';
import { registerRolloutCommands } from './commands/rollout.command.js';
import { registerTokenCommands } from './commands/token.command.js';
import { registerTufCommands } from './commands/tuf.command.js';

/** The `otter` command tree. A new command group is one `registerXCommands(program, ctx)` line here. */
export function createProgram(raw: CliContext = processCliContext()): Command {
  // Every command writes through this context: nothing reaches the terminal unescaped (terminal-text.ts).
  const ctx = terminalSafeContext(raw);
  const program = new Command('otter')
    .description('Otter release engineering: push releases, manage API tokens')
    // Subcommand options stay with their subcommand (`release push --version` is the release's version).
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    // Errors come back to runCli instead of exiting, so it owns the exit code; set before adding commands
    // so every subcommand inherits both.
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(s) });

  registerReleaseCommands(program, ctx);
  registerTokenCommands(program, ctx);
  registerTufCommands(program, ctx);
  registerNodeCommands(program, ctx);
  registerDeltaCommands(program, ctx);
  registerRolloutCommands(program, ctx);
  return program;
}

/** Runs one command line (without node and script) and returns the exit code. */
export async function runCli(
  args: readonly string[],
  raw: CliContext = processCliContext(),
): Promise<number> {
  const ctx = terminalSafeContext(raw);
  try {
    await createProgram(ctx).parseAsync(args, { from: 'user' });
    return 0;
  } catch (e) {
    // Commander already printed its own message (usage errors) or the help text.
    if (e instanceof CommanderError) return e.exitCode;
    ctx.stderr.write(`error: ${describeError(e)}\n`);
    return 1;
  }
}

export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    const details = e.details ? `\n  details: ${JSON.stringify(e.details)}` : '';
    return `${e.status} ${e.code}: ${e.message}${details}`;
  }
  return e instanceof Error ? e.message : String(e);
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await runCli(process.argv.slice(2));
}
