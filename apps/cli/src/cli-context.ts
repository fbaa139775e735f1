import {
  OtterApiClient,
  resolveClientSettings,
  transportSettings,
  type TransportSettings,
} from '#otter/api-client';
import { terminalSafeStream } from './terminal-text.js';

/** What a command may touch of the outside world; tests pass their own. */
export interface CliContext {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Results (JSON, tables): what scripts read. */
  stdout: NodeJS.WritableStream;
  /** Progress, notices and errors. A progress bar is drawn only when this is a TTY. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** --insecure-http and --ca-file (or their env variables), set before a command runs. */
  transport?: TransportSettings;
}

export function processCliContext(): CliContext {
  return { env: process.env, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr };
}

/** `ctx` with stdout and stderr made terminal-safe (terminal-text.ts): what every command writes to. */
export function terminalSafeContext(ctx: CliContext): CliContext {
  return { ...ctx, stdout: terminalSafeStream(ctx.stdout), stderr: terminalSafeStream(ctx.stderr) };
}

/** Resolved per command, so `otter --help` and local validation work without a token. */
export function apiClient(ctx: CliContext): OtterApiClient {
  return new OtterApiClient(
    resolveClientSettings(ctx.env, ctx.cwd, ctx.transport ?? transportSettings({}, ctx.env)),
  );
}

/** A failure the user can fix, reported as `error: <message>` and exit code 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * JSON.stringify escapes the C0 controls inside strings; the DEL, C1 and Unicode format characters it leaves
 * are escaped as `\uXXXX` by the context's terminal-safe stream: the JSON stays valid, its value the same.
 */
export function writeJson(ctx: CliContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
