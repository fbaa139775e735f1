// Types for processes.mjs, so TypeScript tests can import the plain-JS module under strict settings.
import type { ChildProcess } from 'node:child_process';

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly stopLast: boolean;
  readonly running: boolean;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
}

export class ProcessGroup {
  constructor(options?: { graceMs?: number });
  readonly unexpectedExit: Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }>;
  readonly stopping: boolean;
  readonly children: ManagedProcess[];
  start(
    name: string,
    command: string,
    args?: string[],
    options?: { env?: NodeJS.ProcessEnv; cwd?: string; stopLast?: boolean; output?: NodeJS.WritableStream },
  ): ManagedProcess;
  stop(): Promise<void>;
  kill(): void;
}

export function waitForHttp(
  url: string,
  options?: {
    timeoutMs?: number;
    intervalMs?: number;
    accept?: (status: number) => boolean;
    process?: ManagedProcess;
    headers?: Record<string, string>;
  },
): Promise<Response>;

export function freePort(host?: string): Promise<number>;

export function probeRedis(
  port: number,
  host?: string,
  timeoutMs?: number,
): Promise<'none' | 'redis' | 'other'>;

export function ensureRedis(
  group: ProcessGroup,
  env?: NodeJS.ProcessEnv,
  options?: { port?: number; timeoutMs?: number; output?: NodeJS.WritableStream },
): Promise<string>;
