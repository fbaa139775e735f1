// Runs a handful of local processes in the foreground as one unit: each child's output is prefixed with
// its name, the group notices a child that exits on its own, and stopping is SIGTERM first, SIGKILL after
// a grace period. Used by scripts/up.mjs and bench/, and meant for scripts/demo.mjs. Plain Node, no deps.
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const COLORS = [36, 33, 35, 32, 34, 91, 96, 93];
const useColor = () => !!process.stdout.isTTY && !process.env.NO_COLOR;

/** A set of child processes started and stopped together. */
export class ProcessGroup {
  /** @type {ManagedProcess[]} */
  #children = [];
  #stopping = false;
  #graceMs;
  #resolveUnexpected = () => {};

  /**
   * Resolves with the first child that exits while the group is not stopping (any exit code, even 0:
   * these processes are meant to run until told to stop). Never rejects.
   * @type {Promise<{ name: string, code: number | null, signal: NodeJS.Signals | null }>}
   */
  unexpectedExit = new Promise((resolve) => {
    this.#resolveUnexpected = resolve;
  });

  /** @param {{ graceMs?: number }} [options] graceMs: how long stop() waits after SIGTERM before SIGKILL. */
  constructor({ graceMs = 10_000 } = {}) {
    this.#graceMs = graceMs;
    // Last resort when the parent dies with children still running (an exception, process.exit): a
    // child in its own process group would otherwise outlive us.
    process.once('exit', () => this.kill());
  }

  get stopping() {
    return this.#stopping;
  }

  get children() {
    return [...this.#children];
  }

  /**
   * Starts `command args` with stdout and stderr prefixed by `[name] `.
   * @param {string} name
   * @param {string} command
   * @param {string[]} [args]
   * @param {{ env?: NodeJS.ProcessEnv, cwd?: string, stopLast?: boolean, output?: NodeJS.WritableStream }} [options]
   *   stopLast: stop this child only after every other one has stopped (infrastructure such as Redis,
   *   which the others still talk to while they shut down).
   *   output: where the child's stdout and stderr lines go (e.g. a log file), instead of ours.
   * @returns {ManagedProcess}
   */
  start(
    name,
    command,
    args = [],
    { env = process.env, cwd = process.cwd(), stopLast = false, output = undefined } = {},
  ) {
    if (this.#stopping) throw new Error(`cannot start ${name}: the process group is stopping`);
    const color = useColor() && !output ? COLORS[this.#children.length % COLORS.length] : 0;
    const prefix = color ? `\x1b[${color}m[${name}]\x1b[0m ` : `[${name}] `;
    // detached: the child gets its own process group, so a Ctrl-C in the terminal reaches only us and we
    // decide the order of shutdown; stop() then signals the child's whole group (its own children too).
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const pipe = (stream, out) =>
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) =>
        out.write(prefix + line + '\n'),
      );
    pipe(child.stdout, output ?? process.stdout);
    pipe(child.stderr, output ?? process.stderr);

    /** @type {ManagedProcess} */
    const managed = {
      name,
      child,
      stopLast,
      running: true,
      exited: new Promise((resolve) => {
        child.once('error', (error) => {
          // spawn failures (ENOENT, EACCES) never produce 'exit'.
          (output ?? process.stderr).write(`${prefix}could not start ${command}: ${error.message}\n`);
          managed.running = false;
          resolve({ code: null, signal: null, error });
        });
        // 'close', not 'exit': it comes after the child's output has been read to the end.
        child.once('close', (code, signal) => {
          managed.running = false;
          resolve({ code, signal });
        });
      }),
    };
    managed.exited.then(({ code, signal }) => {
      if (!this.#stopping) this.#resolveUnexpected({ name, code, signal });
    });
    this.#children.push(managed);
    return managed;
  }

  /**
   * Stops every child: SIGTERM, then SIGKILL to those still running after the grace period. Children
   * started with stopLast are stopped after the others have exited. Resolves when all have exited.
   */
  async stop() {
    this.#stopping = true;
    await this.#stopEach(this.#children.filter((c) => !c.stopLast));
    await this.#stopEach(this.#children.filter((c) => c.stopLast));
  }

  /** SIGKILLs every running child at once, without waiting (second Ctrl-C, process exit). */
  kill() {
    this.#stopping = true;
    for (const c of this.#children) if (c.running) signal(c, 'SIGKILL');
  }

  async #stopEach(children) {
    await Promise.all(
      children.map(async (c) => {
        if (!c.running) return;
        signal(c, 'SIGTERM');
        const timer = setTimeout(() => {
          if (!c.running) return;
          process.stderr.write(
            `[${c.name}] still running ${this.#graceMs / 1000} s after SIGTERM: SIGKILL\n`,
          );
          signal(c, 'SIGKILL');
        }, this.#graceMs);
        await c.exited;
        clearTimeout(timer);
      }),
    );
  }
}

function signal(managed, sig) {
  const pid = managed.child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      managed.child.kill(sig);
    } catch {
      // already gone
    }
  }
}

/**
 * Polls `url` until it answers with a status that `accept` takes (default: any status below 500).
 * Rejects after timeoutMs, or at once if `process` (a ManagedProcess) exits first.
 * @param {string} url
 * @param {{ timeoutMs?: number, intervalMs?: number, accept?: (status: number) => boolean,
 *   process?: ManagedProcess, headers?: Record<string, string> }} [options]
 * @returns {Promise<Response>} the accepted response (its body not yet read)
 */
export async function waitForHttp(
  url,
  { timeoutMs = 60_000, intervalMs = 200, accept = (status) => status < 500, process: child, headers } = {},
) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    if (child && !child.running) throw new Error(`${child.name} exited before ${url} answered`);
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(Math.max(intervalMs, 2_000)) });
      if (accept(res.status)) return res;
      last = `HTTP ${res.status}`;
      await res.body?.cancel();
    } catch (error) {
      last = error instanceof Error ? (error.cause?.code ?? error.message) : String(error);
    }
    if (Date.now() >= deadline)
      throw new Error(`${url} did not answer as expected within ${timeoutMs} ms (last: ${last})`);
    await sleep(intervalMs);
  }
}

/** A TCP port on `host` that was free a moment ago (the OS picks it). */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * What listens on host:port: 'none' (connection refused), 'redis' (answers PING with PONG) or 'other'.
 * @returns {Promise<'none' | 'redis' | 'other'>}
 */
export function probeRedis(port, host = '127.0.0.1', timeoutMs = 1_000) {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    let answer = '';
    const done = (result) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done('other'));
    socket.once('error', (error) =>
      done(/** @type {NodeJS.ErrnoException} */ (error).code === 'ECONNREFUSED' ? 'none' : 'other'),
    );
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG') ? 'redis' : 'other');
    });
  });
}

/**
 * The Redis URL the Otter processes should use. REDIS_URL from `env` wins; otherwise a Redis already
 * answering on 127.0.0.1:port; otherwise a `redis-server` started in `group` (loopback only, nothing
 * persisted, stopped after the other children).
 * @param {ProcessGroup} group
 * @param {NodeJS.ProcessEnv} [env]
 * @param {{ port?: number, timeoutMs?: number, output?: NodeJS.WritableStream }} [options]
 *   output: where a started redis-server's output goes (see ProcessGroup.start).
 * @returns {Promise<string>}
 */
export async function ensureRedis(
  group,
  env = process.env,
  { port = 6379, timeoutMs = 10_000, output = undefined } = {},
) {
  if (env.REDIS_URL) return env.REDIS_URL;
  const url = `redis://127.0.0.1:${port}`;
  const found = await probeRedis(port);
  if (found === 'redis') return url;
  if (found === 'other') {
    throw new Error(
      `something that is not Redis listens on 127.0.0.1:${port}; set REDIS_URL to a Redis server`,
    );
  }
  const redis = group.start(
    'redis',
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    { stopLast: true, output },
  );
  const deadline = Date.now() + timeoutMs;
  while ((await probeRedis(port)) !== 'redis') {
    if (!redis.running)
      throw new Error('redis-server exited at start (is the redis-server package installed?)');
    if (Date.now() >= deadline)
      throw new Error(`redis-server did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await sleep(100);
  }
  return url;
}

/**
 * @typedef {object} ManagedProcess
 * @property {string} name
 * @property {import('node:child_process').ChildProcess} child
 * @property {boolean} stopLast
 * @property {boolean} running
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null, error?: Error }>} exited
 */
