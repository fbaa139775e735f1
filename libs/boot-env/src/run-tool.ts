import { execFile } from 'node:child_process';

export interface ToolFailure {
  tool: string;
  args: readonly string[];
  /** Why the process failed, for the error message: exit status or signal, then its stderr. */
  reason: string;
  stderr: string;
  /** The program could not be started at all (ENOENT: the Debian package is not installed). */
  notInstalled: boolean;
}

export type ToolResult = { ok: true; stdout: string } | { ok: false; failure: ToolFailure };

/** One bootloader tool process: no shell, bounded time and output, stderr kept for the error message. */
export function runTool(tool: string, args: readonly string[], timeoutMs: number): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      tool,
      [...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (!error) return resolve({ ok: true, stdout });
        const notInstalled = error.code === 'ENOENT';
        const how = notInstalled
          ? 'is not installed'
          : error.killed
            ? `was killed after ${timeoutMs} ms`
            : `exited with ${String(error.code ?? error.signal ?? 'unknown status')}`;
        const trimmed = stderr.trim();
        resolve({
          ok: false,
          failure: {
            tool,
            args,
            reason: `${tool} ${args.join(' ')} ${how}${trimmed ? `: ${trimmed}` : ''}`,
            stderr,
            notInstalled,
          },
        });
      },
    );
  });
}
