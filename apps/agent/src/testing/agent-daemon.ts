import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The built agent (`dist/`), as system tests run it: from <OTTER_TEST_DIST_ROOT>/dist, by default this
 * repository's (`make build`). Throws with what to do when it is not built.
 */
export function builtAgentMain(): string {
  const distRoot =
    process.env.OTTER_TEST_DIST_ROOT ?? fileURLToPath(new URL('../../../../', import.meta.url));
  const main = join(distRoot, 'dist/apps/agent/src/main.js');
  if (!existsSync(main)) {
    throw new Error(
      `${main} not found: build first (make build), or set OTTER_TEST_DIST_ROOT to a directory with a built dist/`,
    );
  }
  return main;
}

export interface AgentDaemonOptions {
  /** An enrolled node's state dir (DeviceAgent.enroll); slot files and the boot environment go there too. */
  stateDir: string;
  imageRootPath: string;
  directorRootPath: string;
  /** Written to slot A the first time (the image the simulated node boots). */
  slotImage: Buffer;
  pollIntervalSeconds?: number;
  extraArgs?: string[];
}

/** One `otter-agent run --simulate` child process and what it printed. */
export class AgentDaemon {
  output = '';
  private readonly exited: Promise<unknown>;

  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = once(child, 'exit');
  }

  /** Starts the daemon of a simulated node (swtpm, file boot environment) on the built agent. */
  static start(options: AgentDaemonOptions): AgentDaemon {
    const slotA = join(options.stateDir, 'slot-a.img');
    const slotB = join(options.stateDir, 'slot-b.img');
    mkdirSync(options.stateDir, { recursive: true });
    if (!existsSync(slotA)) writeFileSync(slotA, options.slotImage);
    if (!existsSync(slotB)) writeFileSync(slotB, '');
    const child = spawn(
      process.execPath,
      [
        builtAgentMain(),
        'run',
        '--state-dir',
        options.stateDir,
        '--root',
        options.imageRootPath,
        '--director-root',
        options.directorRootPath,
        '--slot-a',
        slotA,
        '--slot-b',
        slotB,
        '--boot-env',
        `file:${join(options.stateDir, 'bootenv.json')}`,
        '--simulate',
        '--poll-interval',
        String(options.pollIntervalSeconds ?? 0.5),
        ...(options.extraArgs ?? []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return new AgentDaemon(child);
  }

  /** The JSON lines the daemon logged, in order (anything else it printed is left out). */
  events(): Array<Record<string, unknown>> {
    return this.output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** SIGTERM, then waits for the process to end (it finishes the poll it is in). */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}
