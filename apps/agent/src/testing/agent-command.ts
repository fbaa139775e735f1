import { execFile } from 'node:child_process';
import { builtAgentMain } from './agent-daemon.js';

/** What one `otter-agent` command line did. */
export interface AgentRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * One command line of the built agent (`dist/`) in its own process, as an operator or a provisioning script
 * runs it: only PATH from this environment, so nothing of the test's leaks in.
 */
export function runBuiltAgent(args: string[], cwd: string, timeoutMs = 25_000): Promise<AgentRun> {
  const main = builtAgentMain();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [main, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd, timeout: timeoutMs },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}
