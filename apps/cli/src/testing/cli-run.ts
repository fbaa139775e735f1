import { Writable } from 'node:stream';
import type { CliContext } from '../cli-context.js';
import { runCli } from '../main.js';

/** A stream that keeps what was written to it. */
export class Capture extends Writable {
  text = '';
  constructor(readonly isTTY = false) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** One `otter` command line in-process against `server`, with its output captured. */
export async function runOtter(args: string[], server: string, token: string, cwd: string): Promise<CliRun> {
  const stdout = new Capture();
  const stderr = new Capture();
  const ctx: CliContext = { env: { OTTER_SERVER: server, OTTER_TOKEN: token }, cwd, stdout, stderr };
  const code = await runCli(args, ctx);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/**
 * Any character a terminal acts on rather than prints, a line feed aside (output is lines): C0, DEL, C1, the
 * Unicode line separators and bidirectional formatting characters.
 */
export const RAW_TERMINAL_CONTROL =
  // eslint-disable-next-line no-control-regex -- looking for control characters is the point
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
