import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import {
  ApiError,
  CA_FILE_ENV,
  checkServerTransport,
  DEFAULT_SERVER,
  INSECURE_HTTP_ENV,
  transportSettings,
  trustCaFile,
} from '#otter/api-client';
import { processCliContext, terminalSafeContext, type CliContext } from './cli-context.js';
import { registerAuditCommands } from './commands/audit.command.js';
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
    .configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(s) })
    .option(
      '--insecure-http',
      `allow an http:// server that is not loopback (labs only: warns on every run; or ${INSECURE_HTTP_ENV}=1)`,
    )
    .option('--ca-file <file>', `PEM bundle of CAs to trust for an https:// server (or ${CA_FILE_ENV})`)
    .hook('preAction', () => applyTransport(program, ctx));

  registerReleaseCommands(program, ctx);
  registerTokenCommands(program, ctx);
  registerTufCommands(program, ctx);
  registerNodeCommands(program, ctx);
  registerDeltaCommands(program, ctx);
  registerRolloutCommands(program, ctx);
  registerAuditCommands(program, ctx);
  return program;
}

/** The transport flags, before any command talks to the server: trusted CAs, and the --insecure-http warning. */
function applyTransport(program: Command, ctx: CliContext): void {
  const transport = transportSettings(program.opts<{ insecureHttp?: boolean; caFile?: string }>(), ctx.env);
  ctx.transport = transport;
  if (transport.caFile) trustCaFile(transport.caFile);
  if (transport.insecureHttp) {
    const server = ctx.env.OTTER_SERVER?.trim() || DEFAULT_SERVER;
    let warning: string | undefined;
    try {
      ({ warning } = checkServerTransport(server, transport, 'OTTER_SERVER'));
    } catch {
      // A server that is not a URL at all is reported by the command itself.
    }
    ctx.stderr.write(
      `${warning ?? `WARNING: --insecure-http is set (labs only); ${server} needs no exception`}\n`,
    );
  }
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
