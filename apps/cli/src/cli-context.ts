import {
  OtterApiClient,
  resolveClientSettings,
  transportSettings,
  type TransportSettings,
} from '#otter/api-client';

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

export function writeJson(ctx: CliContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
