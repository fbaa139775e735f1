import { spawn, type ChildProcess } from 'node:child_process';
import { BSDIFF_NODE_PATH } from './bsdiff.js';
import { DeltaError } from './format.js';
import { DELTA_BUILDER_ENV } from './limits.js';

/**
 * bspatch from bsdiff-node is C code reading an untrusted patch: on a malformed patch it leaks memory and
 * file handles, and a bzip2 "bomb" in its control stream can keep it looping for hours on a thread that
 * cannot be cancelled. So the applier never runs it in its own process: one child process per apply runs
 * every bspatch, and a crash or a timeout kills only the child.
 */
const CHILD_SCRIPT = `
const bsdiff = require(process.argv[1]);
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  let error = null;
  try { bsdiff.patchSync(m.oldFile, m.newFile, m.patchFile); } catch (e) { error = String((e && e.message) || e); }
  process.send({ id: m.id, error });
});
`;

interface PatchReply {
  id: number;
  error: string | null;
}

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class BspatchSandbox {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private start(): ChildProcess {
    const child = spawn(process.execPath, ['-e', CHILD_SCRIPT, BSDIFF_NODE_PATH], {
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      // No NODE_OPTIONS or loaders from the parent: the child runs plain Node and the addon, nothing else.
      env: { ...DELTA_BUILDER_ENV },
    });
    child.on('message', (message: PatchReply) => {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.error === null) pending.resolve();
      else pending.reject(new DeltaError('bsdiff-failed', `bspatch refused the payload: ${message.error}`));
    });
    const fail = (why: string): void => {
      if (this.child === child) this.child = undefined;
      for (const [id, pending] of this.pending) {
        clearTimeout(pending.timer);
        pending.reject(new DeltaError('bsdiff-failed', `bspatch process ${why}`));
        this.pending.delete(id);
      }
    };
    child.on('exit', (code, signal) => fail(`exited (${signal ?? code})`));
    child.on('error', (e) => fail(`failed: ${e.message}`));
    return child;
  }

  /** Applies `patchFile` to `oldFile`, writing `newFile`; refuses after `timeoutMs` by killing the child. */
  patch(oldFile: string, newFile: string, patchFile: string, timeoutMs: number): Promise<void> {
    this.child ??= this.start();
    const child = this.child;
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        child.kill('SIGKILL');
        if (this.child === child) this.child = undefined;
        reject(new DeltaError('bsdiff-timeout', `bspatch did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        child.send({ id, oldFile, newFile, patchFile });
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new DeltaError('bsdiff-failed', `bspatch process unreachable: ${(e as Error).message}`));
      }
    });
  }

  /** Ends the child (if one was started) and waits for it to exit. */
  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }
}
