#!/usr/bin/env node
// `make bench`: how many director polls per second the api answers, next to a bare node:http server serving
// the same bytes in the same run. A director poll is what every agent does on every check for work: GET
// /tuf/director/<node>/metadata/timestamp.json with its device access token. The aim: director polls >= 0.5 x
// the bare server's requests/s, both when nothing changed and when every poll has to re-sign.
//
// The built api runs on a fresh data dir, a free port and loopback only, once per database. BENCH_NODES
// active nodes are written as rows, each with an access token issued by DeviceTokenService under the api's
// own token key (read from the data dir, as director-fixtures.ts issues them) and an assignment written
// through DirectorAssignmentRepository.assignMany (what the rollout scheduler calls). A first poll of every
// node signs its metadata. Then autocannon, 50 connections, each request with its node's access token (and,
// binding tokens, its DPoP proof); in the steady runs each connection polls its own share of the nodes, as
// agents each keep their own connection:
//
//   0. api floor: GET /tuf/image/metadata/timestamp.json on the same api, a plain Fastify route with no token,
//      no database and no Nest (a reference for what the api's HTTP stack costs alone, not an aim)
//   1. unchanged: polls spread round-robin over the nodes, nothing changes, so nothing is re-signed
//   2. bare: a node:http server in a worker thread of this process, serving one node's timestamp.json
//   3. regenerated: rounds of one poll per node; before each round every node's assignment moves to another
//      version (one assignMany, then the api's one-second hold waited out, neither timed), so every poll of
//      the round re-signs the node's targets, snapshot and timestamp and stores them. Each round is checked:
//      every node re-signed exactly once.
//   and, in this process, the CPU of signing one node's three roles alone: the ceiling of re-signing polls
//   per core that no server design can pass while metadata is signed on the poll. These runs use this build
//   with the proof checked once per connection (OTTER_DPOP_CONNECTION_BINDING=true: the default where the api
//   holds TLS).
//
// The binding's cost (with BENCH_BEFORE_REF): three apis on three fresh databases at once, the before build
// (bearer tokens) and this build with the proof checked per connection and per request. Every node polls on
// a kept-alive connection of its own (an agent's poll interval, 60 s ± 20 %, is inside the api's 72 s
// keep-alive), at a fixed pace of BENCH_POLL_RATE polls/s: each build does the same work per poll whatever its
// speed (the api holds a node's answer for a second, so a build answering faster would otherwise confirm fewer
// of its polls in the database). After a warm-up round each (which opens and binds every connection),
// BENCH_ROUNDS rounds of BENCH_ROUND_SECONDS per build, interleaved (A B C, B C A, ...); the api CPU per poll
// of each round (per-thread schedstat from /proc, in ns) gives a ratio after/before within the round, and the
// median and spread of those ratios over the rounds are printed, so the machine's noise shows next to the
// number. With BENCH_PROFILE=1 each api's profile over its rounds is printed, function by function, with the
// binding's share of it (the time under its entry functions, bench/lib/cpu-profile-share.mjs BINDING_ENTRIES);
// the comparison's profiles are kept, with their measured windows, in BENCH_PROFILE_DIR (default
// .otter-bench/profiles/director-<time>), for that script to read again.
//
//   node bench/director-poll.bench.mjs
//     BENCH_SECONDS     seconds per measured run (default 8); runs 0-2 follow a 2 s warm-up, run 3 a
//                       warm-up round
//     BENCH_NODES       simulated nodes (default 1000)
//     BENCH_DIALECTS    sqlite,postgres (default both)
//     BENCH_PROFILE=1   run the api under --cpu-prof and print, per run, where its main thread spent its
//                       time (the profile costs some throughput)
//     BENCH_BUILD_DIR   directory whose dist/ holds the built api and libs, next to a package.json with the
//                       #otter/* imports and node_modules (default: this repository)
//     BENCH_BEFORE_REF  a commit to compare against (`make bench` names the last one before device tokens
//                       were bound to the TPM key), built once into .otter-bench/; or BENCH_BEFORE_BUILD_DIR,
//                       a directory holding such a build: runs the binding's cost comparison above. Proofs
//                       are made before each round, outside it (and, should a round outlast them, in the
//                       request loop, counted); the api's CPU is what is compared, not this process's.
//     BENCH_POLL_RATE   polls/s of the comparison (default 800: each of 1,000 nodes every 1.25 s, past the
//                       one-second hold, so every poll confirms its node in the database as in a real fleet;
//                       above 1,000 some polls are served from the hold)
//     BENCH_ROUNDS      interleaved rounds (default 15); BENCH_ROUND_SECONDS, seconds per round (default 2)
//     BENCH_COMPARISON_ONLY=1  only the comparison, not runs 0-3
//     OTTER_TEST_DATABASE_URL  PostgreSQL server; a fresh schema is created there and dropped afterwards
//                       (default postgres://postgres@127.0.0.1:5432/test, as scripts/test-services.sh)
//     REDIS_URL         Redis (default: a local one, started if none answers); keys get a prefix of their own
//
// Exits non-zero only when something failed to run (a refused poll, a round that did not re-sign every
// node), never because of a ratio.
import 'reflect-metadata';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { ProcessGroup, ensureRedis, freePort, waitForHttp } from '../scripts/lib/processes.mjs';
import { startBareServer } from './bare-server.mjs';
import { beforeBuildDir } from './lib/before-build.mjs';
import { dpopHeaders, dpopKey } from './lib/dpop.mjs';
import { DEVICE_KEY_ATTRIBUTES, softwareTpmKey } from './lib/software-quote.mjs';
import { benchArgs, headerHelp } from './lib/bench-cli.mjs';
import { benchDialects, cleanupOnExit } from './lib/cleanups.mjs';
import { BINDING_ENTRIES, describeShare, profileShare } from './lib/cpu-profile-share.mjs';
import { describeSpread, interleaved, roundRatios, spread } from './lib/interleave.mjs';
import { freshPgSchema } from './lib/pg-schema.mjs';
import { processCpuSeconds } from './lib/process-cpu.mjs';
import { runBench, table, warnIfBusy } from './lib/report.mjs';

const AIM = 0.5;
const CONNECTIONS = 50;
const WARMUP_SECONDS = 2;
const CHUNK = 500;
const HW = 'bench-board';
const IMAGE_TIMESTAMP_PATH = '/tuf/image/metadata/timestamp.json';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => process.stderr.write(`[bench] ${message}\n`);

// The comment at the top of this file is the help.
benchArgs(log, headerHelp(import.meta.url));
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
if (!Number.isFinite(seconds) || seconds <= 0) {
  log(`BENCH_SECONDS must be a positive number of seconds, not ${JSON.stringify(process.env.BENCH_SECONDS)}`);
  process.exit(2);
}
const nodeCount = Number(process.env.BENCH_NODES ?? 1000);
if (!Number.isInteger(nodeCount) || nodeCount < CONNECTIONS) {
  log(`BENCH_NODES must be an integer >= ${CONNECTIONS}, not ${JSON.stringify(process.env.BENCH_NODES)}`);
  process.exit(2);
}
const rounds = Number(process.env.BENCH_ROUNDS ?? 15);
const roundSeconds = Number(process.env.BENCH_ROUND_SECONDS ?? 2);
const pollRate = Number(process.env.BENCH_POLL_RATE ?? 800);
if (!Number.isInteger(rounds) || rounds < 3 || !(roundSeconds > 0) || !(pollRate > 0)) {
  log('BENCH_ROUNDS must be an integer >= 3, BENCH_ROUND_SECONDS and BENCH_POLL_RATE positive numbers');
  process.exit(2);
}
const dialects = benchDialects(log);
const comparisonOnly = process.env.BENCH_COMPARISON_ONLY === '1';
const profiling = process.env.BENCH_PROFILE === '1';
const profileRoot = resolve(
  process.env.BENCH_PROFILE_DIR ??
    join(root, '.otter-bench', 'profiles', `director-${new Date().toISOString().replace(/[:.]/g, '-')}`),
);
const buildDir = resolve(process.env.BENCH_BUILD_DIR ?? root);

/** Redis, if this script had to start one; each api gets a ProcessGroup of its own. */
const infra = new ProcessGroup({ graceMs: 10_000 });
const { cleanups, cleanup } = cleanupOnExit(log);

/** A file of the build, which must exist. */
function builtFile(...path) {
  const file = join(buildDir, 'dist', ...path);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`make bench\`, which builds first`);
  return file;
}

const [configLib, dbLib, directorLib, identityLib, tufSigningLib] = await Promise.all(
  ['config', 'db', 'director', 'identity', 'tuf-signing'].map(
    (name) => import(pathToFileURL(builtFile('libs', name, 'src', 'index.js')).href),
  ),
);

// --- The api, one per database.

/**
 * Starts the built api on `database` in a fresh data dir. Everything but the database and Redis is the
 * embedded default; nothing from the caller's Otter configuration leaks in.
 */
async function startApi(build, database, redisUrl, local, extraEnv = {}) {
  const entry = join(build, 'dist', 'apps', 'api', 'src', 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`make bench\`, which builds first`);
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-bench-director-'));
  local.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('OTTER_') && name !== 'DATABASE_URL'),
  );
  const prefix = `bench${randomBytes(5).toString('hex')}`;
  Object.assign(env, {
    OTTER_DATA_DIR: dataDir,
    OTTER_HOST: '127.0.0.1',
    OTTER_PORT: String(await freePort()),
    OTTER_LOG_LEVEL: 'warn',
    REDIS_URL: redisUrl,
    // Its own Redis keys (revoked nodes, jtis, queues), whatever else uses this Redis; deleted at the end.
    OTTER_QUEUE_PREFIX: prefix,
    DATABASE_URL: database === 'sqlite' ? `sqlite:${join(dataDir, 'otter.sqlite')}` : database,
    ...extraEnv,
  });
  local.push(() => deleteRedisKeys(redisUrl, `${prefix}:*`));
  const profileDir = profiling ? join(dataDir, 'profile') : undefined;
  const nodeArgs = profileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=250']
    : [];
  const group = new ProcessGroup({ graceMs: 10_000 });
  /** @type {{ name: string, code: number | null, signal: string | null } | undefined} */
  let died;
  void group.unexpectedExit.then((exit) => {
    died = exit;
  });
  const api = group.start('api', process.execPath, [...nodeArgs, entry], { env, cwd: build });
  local.push(() => group.stop());
  const base = `http://127.0.0.1:${env.OTTER_PORT}`;
  await waitForHttp(`${base}/health`, { process: api, accept: (s) => s === 200, timeoutMs: 120_000 });
  return {
    base,
    dataDir,
    pid: api.child.pid,
    config: configLib.loadConfig(env),
    died: () => died,
    /** Stops the api and reads its CPU profile (BENCH_PROFILE=1): the profile is written at exit. */
    stopForProfile: async () => {
      await group.stop();
      if (!profileDir || !existsSync(profileDir)) return undefined;
      const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
      return (
        file && { path: join(profileDir, file), ...JSON.parse(readFileSync(join(profileDir, file), 'utf8')) }
      );
    },
  };
}

async function deleteRedisKeys(url, pattern) {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

// --- Nodes, tokens and assignments.

/**
 * Active nodes as rows (as director-fixtures.ts writes them), then a token and an assignment each. The rows come
 * from the measured build's own row builder (`rowLib`): the before build's schema may lack columns this one has.
 */
async function seed(db, dataDir, rowLib) {
  const ids = Array.from({ length: nodeCount }, () => randomUUID());
  // Each node's device key, recorded in its row as identity issuance does: the api accepts a token only while it
  // is bound to the key the node holds (a build before that check ignores the column).
  const keys = ids.map(() => softwareTpmKey(DEVICE_KEY_ATTRIBUTES));
  for (let i = 0; i < ids.length; i += CHUNK) {
    await db
      .insertInto('nodes')
      .values(
        ids.slice(i, i + CHUNK).map((id, j) => ({
          ...rowLib.testNodeRow({ id, hardwareId: HW }),
          device_public: keys[i + j].tpm2bPublic.toString('base64'),
        })),
      )
      .execute();
  }
  // The api created its token key at boot; this opens the same sealed file with the same passphrase.
  const passphrase = readFileSync(join(dataDir, 'keys', 'dev-passphrase'), 'utf8').trim();
  const signingKey = await identityLib.loadOrCreateTokenSigningKey(dataDir, passphrase);
  // issueAccessToken touches no Redis.
  const tokens = new identityLib.DeviceTokenService(undefined, {
    signingKey,
    accessTokenLifetimeSeconds: 3600,
  });
  const nodes = [];
  for (const [i, id] of ids.entries()) {
    const key = dpopKey(keys[i].privateKey, keys[i].publicKey);
    // Bound to the node's key (an api before the binding ignores cnf and takes it as a bearer token).
    const { token } = await tokens.issueAccessToken(id, key.jkt);
    nodes.push({
      id,
      path: `/tuf/director/${id}/metadata/timestamp.json`,
      token,
      key,
      /** Proofs made ahead of a run, for this node's path; used first, oldest first. */
      proofs: [],
    });
  }
  return nodes;
}

/** Every node to `version` of the board's image: one multi-row upsert per 1,000 nodes, as a wave admission. */
async function assignAll(assignments, nodes, version) {
  const sha256 = createHash('sha256').update(`otter-bench image ${version}`).digest('hex');
  await assignments.assignMany(
    nodes.map((n) => ({
      nodeId: n.id,
      hardwareId: HW,
      releaseId: `release-${version}`,
      targetPath: `images/${HW}/${version}`,
      version,
      sha256,
      length: 100_000_000,
      rolloutId: 'bench-rollout',
    })),
  );
}

/** Of the bench's nodes: how many have metadata signed from their current assignment. */
async function signedCount(db) {
  const row = await db
    .selectFrom('director_assignments')
    .select((eb) => eb.fn.countAll().as('n'))
    .whereRef('metadata_generation', '=', 'generation')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Fingerprint of every stored director timestamp: changes when any node's timestamp is re-signed. */
async function timestampFingerprint(db) {
  const { rows } = await sql`select count(*) as n, sum(version) as v from tuf_metadata
    where role = 'timestamp' and repository like 'director/%'`.execute(db);
  return `${rows[0].n}/${rows[0].v}`;
}

// --- CPU accounting: cores the api used during a run.

// --- Load.

/** Microseconds on the clock V8's CPU profiles use (CLOCK_MONOTONIC, as process.hrtime). */
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/**
 * How a run's requests authenticate: `dpop` (this build: the node's bound token and a proof per request, from
 * its pool or, if a run outlasts the pool, signed in the request loop and counted) or `bearer`.
 */
function auth(mode, base) {
  const live = { count: 0 };
  const headers =
    mode === 'dpop'
      ? (node, path) => {
          const ready = node.proofs.pop();
          if (ready) return ready;
          live.count++;
          return dpopHeaders(node.key, node.token, 'GET', `${base}${path}`);
        }
      : (node) => ({ authorization: `Bearer ${node.token}` });
  return { mode, headers, live };
}

/** `perNode` proofs for each node's own poll URL, made now (not timed): what its requests will carry. */
function fillProofs(nodes, base, perNode) {
  for (const node of nodes) {
    node.proofs = Array.from({ length: perNode }, () =>
      dpopHeaders(node.key, node.token, 'GET', `${base}${node.path}`),
    );
  }
}

/**
 * autocannon requests that walk the nodes round-robin, each with its own credentials (and its own path,
 * unless `path` is given); `restart` starts a walk over.
 */
function nodeWalk(nodes, credentials, path) {
  let i = 0;
  return {
    restart: () => {
      i = 0;
    },
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => {
          const node = nodes[i++ % nodes.length];
          const requestPath = path ?? node.path;
          return { ...request, path: requestPath, headers: credentials.headers(node, requestPath) };
        },
      },
    ],
  };
}

function summarize(label, results, wallSeconds, cpu) {
  const total = results.reduce((s, r) => s + r.requests.total, 0);
  const sum = (key) => results.reduce((s, r) => s + r[key], 0);
  const p = (q) => Math.max(...results.map((r) => r.latency[q]));
  return {
    label,
    total,
    rps: total / wallSeconds,
    // Of several rounds: the worst round's percentile.
    p50: p('p50'),
    p99: p('p99'),
    bad: sum('1xx') + sum('3xx') + sum('4xx') + sum('5xx'),
    errors: sum('errors') + sum('timeouts'),
    statuses: [...new Set(results.flatMap((r) => Object.keys(r.statusCodeStats ?? {})))].join(','),
    cpuMsPerRequest: cpu === undefined ? undefined : (cpu * 1000) / total,
    apiCores: cpu === undefined ? undefined : cpu / wallSeconds,
  };
}

/**
 * A run of `seconds` after a warm-up, round-robin over the nodes. Each of the CONNECTIONS connections polls its
 * own share of the nodes (node i on connection i mod CONNECTIONS), as agents each keep their own connection.
 */
async function measureSteady(label, base, nodes, apiPid, credentials, path) {
  log(`${label}: ${WARMUP_SECONDS} s warm-up + ${seconds} s`);
  const window = {};
  const instances = Array.from({ length: CONNECTIONS }, (_, c) =>
    autocannon({
      url: base,
      requests: nodeWalk(
        nodes.filter((_, i) => i % CONNECTIONS === c),
        credentials,
        path,
      ).requests,
      connections: 1,
      pipelining: 1,
      duration: seconds,
      warmup: { connections: 1, duration: WARMUP_SECONDS },
    }),
  );
  // autocannon does not say when its warm-up ends: the window for CPU and profile opens after its duration.
  let cpu0;
  const warmupTimer = setTimeout(() => {
    cpu0 = apiPid && processCpuSeconds(apiPid);
    window.start = monotonicMicros();
  }, WARMUP_SECONDS * 1000);
  const results = await Promise.all(instances);
  clearTimeout(warmupTimer);
  window.end = monotonicMicros();
  const cpu1 = apiPid && processCpuSeconds(apiPid);
  const cpu = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
  const total = results.reduce((n, r) => n + r.requests.total, 0);
  if (total === 0) throw new Error(`${label}: no request completed (errors: ${results[0].errors})`);
  return {
    ...summarize(label, results, Math.max(...results.map((r) => r.duration)), cpu),
    window,
    liveProofs: credentials.live.count,
  };
}

/**
 * Rounds of exactly one poll per node (autocannon's `amount` splits them over the connections; setupRequest
 * runs once per request sent), each after every node's assignment changed, until `seconds` of polling.
 */
async function measureRegenerated(label, base, nodes, apiPid, db, assignments, credentials) {
  const walk = nodeWalk(nodes, credentials);
  const round = async (n) => {
    const bump = performance.now();
    await assignAll(assignments, nodes, `3.0.${n}`);
    const bumpMs = performance.now() - bump;
    const stale = nodes.length - (await signedCount(db));
    if (stale !== nodes.length)
      throw new Error(`round ${n}: ${stale} of ${nodes.length} assignments changed`);
    // The api serves a node's last answer for up to POLL_HOLD_MS after confirming it: wait that out (not
    // timed), as a node polling a minute after the change would, so every poll of the round re-signs.
    await new Promise((r) => setTimeout(r, directorLib.POLL_HOLD_MS + 50));
    if (credentials.mode === 'dpop') fillProofs(nodes, base, 1);
    walk.restart();
    const cpu0 = apiPid && processCpuSeconds(apiPid);
    const started = performance.now();
    const t0 = monotonicMicros();
    const instance = autocannon({
      url: base,
      requests: walk.requests,
      connections: CONNECTIONS,
      pipelining: 1,
      amount: nodes.length,
    });
    // autocannon notices that `amount` is done only at its next once-a-second sample: the round ends at
    // its last response, not when autocannon resolves.
    let answered = 0;
    let ended;
    instance.on('response', () => {
      if (++answered === nodes.length) {
        ended = { at: performance.now(), t: monotonicMicros(), cpu: apiPid && processCpuSeconds(apiPid) };
      }
    });
    const result = await instance;
    if (!ended) throw new Error(`${label} round ${n}: ${answered} of ${nodes.length} polls answered`);
    const wall = (ended.at - started) / 1000;
    const resigned = await signedCount(db);
    if (
      result.requests.total !== nodes.length ||
      result['2xx'] !== nodes.length ||
      resigned !== nodes.length
    ) {
      throw new Error(
        `${label} round ${n}: ${result['2xx']} of ${result.requests.total} polls answered 2xx, ` +
          `${resigned} of ${nodes.length} nodes re-signed (errors ${result.errors})`,
      );
    }
    return {
      result,
      wall,
      bumpMs,
      window: { start: t0, end: ended.t },
      cpu: cpu0 !== undefined ? ended.cpu - cpu0 : 0,
    };
  };
  log(`${label}: a warm-up round, then rounds of ${nodes.length} polls for ${seconds} s`);
  let n = 1;
  await round(n++);
  const rounds = [];
  let polling = 0;
  while (polling < seconds) {
    const r = await round(n++);
    rounds.push(r);
    polling += r.wall;
  }
  const cpu = apiPid ? rounds.reduce((s, r) => s + r.cpu, 0) : undefined;
  return {
    ...summarize(
      label,
      rounds.map((r) => r.result),
      polling,
      cpu,
    ),
    rounds: rounds.length,
    bumpMs: median(rounds.map((r) => r.bumpMs)),
    windows: rounds.map((r) => r.window),
  };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

// --- One database, start to finish.

async function runDialect(dialect, redisUrl, build, label, expectedRps, extraEnv) {
  const local = [];
  const dropLocal = async () => {
    for (const fn of local.splice(0).reverse()) await fn();
  };
  cleanups.push(dropLocal);
  try {
    const { api, where } = await openDialect(dialect, redisUrl, build, label, local, extraEnv);
    return { label, ...(await measureDialect(dialect, where, api, local, label, expectedRps, build)) };
  } finally {
    // Each database's api and rows go as soon as it is measured: the next one runs on a quiet machine.
    cleanups.splice(cleanups.indexOf(dropLocal), 1);
    await dropLocal();
  }
}

/** A fresh database (SQLite file, or a PostgreSQL schema of its own) and `build`'s api on it. */
async function openDialect(dialect, redisUrl, build, label, local, extraEnv) {
  let database = 'sqlite';
  let where;
  if (dialect === 'postgres') {
    const fresh = await freshPgSchema(local);
    database = fresh.url;
    where = fresh.where;
  }
  log(`${dialect}: starting the api of ${label} (${build})`);
  const api = await startApi(build, database, redisUrl, local, extraEnv);
  where ??= `SQLite (WAL) file in ${api.dataDir} (${filesystemOf(api.dataDir)})`;
  return { api, where };
}

/**
 * `build`'s nodes on its api: rows, tokens and assignments, whether the build binds tokens (`dpop`) or takes
 * bearer tokens, and every node's first poll, which signs its metadata.
 */
async function seedApi(dialect, api, local, label, buildDir) {
  const db = dbLib.createDatabase(api.config.database);
  local.push(() => db.destroy());
  const assignments = new directorLib.DirectorAssignmentRepository(db);

  const seeding = performance.now();
  const rowLib = await import(pathToFileURL(join(buildDir, 'dist', 'libs', 'db', 'src', 'index.js')).href);
  const nodes = await seed(db, api.dataDir, rowLib);
  await assignAll(assignments, nodes, '3.0.0');
  log(
    `${dialect}: ${nodes.length} nodes, tokens and assignments in ${(performance.now() - seeding).toFixed(0)} ms`,
  );

  // A build that binds tokens refuses them as bearer tokens, and says so.
  const probe = await fetch(api.base + nodes[0].path, {
    headers: { authorization: `Bearer ${nodes[0].token}` },
  });
  const probed = await probe.json();
  const mode = probe.status === 401 && probed?.details?.reason === 'dpop_required' ? 'dpop' : 'bearer';
  if (mode === 'bearer' && probe.status !== 200) throw new Error(`first poll: HTTP ${probe.status}`);
  log(
    `${dialect} ${label}: ${mode === 'dpop' ? 'tokens bound to device keys, a DPoP proof per poll' : 'bearer tokens'}`,
  );

  // Every node's first poll signs its metadata; the unchanged runs then find it all in place.
  const first = await pollEach(api.base, nodes, auth(mode, api.base));
  if (first.failed) throw new Error(`first poll: ${first.failed}`);
  if ((await signedCount(db)) !== nodes.length) throw new Error('the first polls did not sign every node');
  return { db, assignments, nodes, mode };
}

async function measureDialect(dialect, where, api, local, build, expectedRps, buildDir) {
  const { db, assignments, nodes, mode } = await seedApi(dialect, api, local, build, buildDir);
  const credentials = () => auth(mode, api.base);
  const bearer = auth('bearer', api.base);
  const sample = await fetch(api.base + nodes[0].path, {
    headers: credentials().headers(nodes[0], nodes[0].path),
  });
  const body = Buffer.from(await sample.arrayBuffer());
  const copied = {};
  for (const name of ['content-type', 'cache-control']) {
    const value = sample.headers.get(name);
    if (value) copied[name] = value;
  }
  // The same request bytes (a node's path and token) reach the bare server, which ignores them.
  const bare = await startBareServer({ body, etag: '"director-bench"', headers: copied });
  local.push(bare.close);
  log(`${dialect}: ${api.base} (timestamp.json ${body.length} bytes); bare: ${bare.url}`);

  const before = await timestampFingerprint(db);
  // What the api answers with no token, no database and no Nest: the image repository's timestamp.json, a
  // plain Fastify route holding its body for a second (bench/timestamp.bench.mjs measures it alone).
  const floor = await measureSteady(
    `${dialect} ${build} api floor`,
    api.base,
    nodes,
    api.pid,
    bearer,
    IMAGE_TIMESTAMP_PATH,
  );
  if (mode === 'dpop') {
    // Enough proofs for the run as fast as the fastest poll measured so far, and a quarter more.
    const perNode = Math.ceil((expectedRps * (seconds + WARMUP_SECONDS) * 1.25) / nodes.length);
    log(
      `${dialect} ${build}: making ${int(perNode * nodes.length)} DPoP proofs for the unchanged run (not timed)`,
    );
    fillProofs(nodes, api.base, perNode);
  }
  const unchanged = await measureSteady(
    `${dialect} ${build} unchanged`,
    api.base,
    nodes,
    api.pid,
    credentials(),
  );
  for (const node of nodes) node.proofs = [];
  if ((await timestampFingerprint(db)) !== before) throw new Error('the unchanged run re-signed metadata');
  // Between the two director runs, so a change in the machine's load skews each ratio as little as possible.
  const bareRun = await measureSteady(`${dialect} ${build} bare`, bare.url, nodes, undefined, bearer);
  const regenerated = await measureRegenerated(
    `${dialect} ${build} regenerated`,
    api.base,
    nodes,
    api.pid,
    db,
    assignments,
    credentials(),
  );
  const signing = await signingCost(db, nodes[0].id);
  const died = api.died();
  if (died) throw new Error(`${died.name} exited during the runs (code ${died.code}, signal ${died.signal})`);
  const cpuProfile = profiling ? await api.stopForProfile() : undefined;
  return {
    dialect,
    mode,
    where,
    bodyBytes: body.length,
    floor,
    unchanged,
    bare: bareRun,
    regenerated,
    signing,
    profile: cpuProfile && {
      unchanged: profileSummary(cpuProfile, [unchanged.window], unchanged.total),
      regenerated: profileSummary(cpuProfile, regenerated.windows, regenerated.total),
    },
  };
}

/**
 * The CPU a re-signing poll cannot avoid: signing a node's three roles (canonical JSON and an ed25519
 * signature each, as the director does), timed in this process on the node's stored metadata. Its inverse is
 * the most re-signing polls one core could answer if nothing else cost anything.
 */
async function signingCost(db, nodeId) {
  const rows = await db
    .selectFrom('tuf_metadata')
    .select(['role', 'body'])
    .where('repository', '=', `director/${nodeId}`)
    .orderBy('version', 'desc')
    .execute();
  const roles = ['targets', 'snapshot', 'timestamp'].map((role) => ({
    role,
    signed: JSON.parse(rows.find((r) => r.role === role).body).signed,
  }));
  const signers = [tufSigningLib.Ed25519Signer.generate()];
  const signAll = () => {
    for (const { role, signed } of roles) tufSigningLib.signMetadata(role, signed, signers);
  };
  for (let i = 0; i < 200; i++) signAll();
  const iterations = 2000;
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) signAll();
  const microsPerPoll = ((performance.now() - t0) * 1000) / iterations;
  return { microsPerPoll, ceilingPerCore: 1e6 / microsPerPoll };
}

/** One poll per node, 16 at a time, with fetch; counts failures. */
async function pollEach(base, nodes, credentials) {
  let next = 0;
  let failed;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < nodes.length && !failed) {
        const node = nodes[next++];
        const res = await fetch(base + node.path, { headers: credentials.headers(node, node.path) });
        const text = await res.text();
        if (res.status !== 200) failed = `HTTP ${res.status} ${text.slice(0, 300)}`;
      }
    }),
  );
  return { failed };
}

function filesystemOf(dir) {
  const names = { 0xef53: 'ext4', 0x01021994: 'tmpfs', 0x794c7630: 'overlayfs', 0x58465342: 'xfs' };
  try {
    const type = statfsSync(dir).type;
    return names[type] ?? `filesystem 0x${type.toString(16)}`;
  } catch {
    return 'unknown filesystem';
  }
}

// --- Before and after the binding, interleaved (BENCH_BEFORE_REF).

/**
 * The three builds the comparison runs side by side, each on a database of its own: the build before the
 * binding (bearer tokens), and this one with the proof checked once per connection (the default where the api
 * holds TLS and no proxy speaks for the agents) and on every request.
 */
function bindingArms(beforeDir) {
  return [
    { label: 'before', build: beforeDir, env: {} },
    { label: 'after, per connection', build: buildDir, env: { OTTER_DPOP_CONNECTION_BINDING: 'true' } },
    { label: 'after, per request', build: buildDir, env: { OTTER_DPOP_CONNECTION_BINDING: 'false' } },
  ];
}

/**
 * One kept-alive connection per node, as each agent keeps its own (its poll interval, 60 s ± 20 %, is inside
 * the api's 72 s keep-alive): a connection carries exactly one node's token and key, never another's.
 */
function nodeConnections(nodes) {
  for (const node of nodes) node.agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  return () => {
    for (const node of nodes) node.agent.destroy();
  };
}

/** One poll on the node's own connection; resolves its status and whether it reused the connection. */
function pollOnce(port, node, headers) {
  return new Promise((done, fail) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: node.path, method: 'GET', headers, agent: node.agent },
      (res) => {
        res.on('data', () => {});
        res.on('error', fail);
        res.on('end', () => done({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      },
    );
    req.on('error', fail);
    req.end();
  });
}

/**
 * `seconds` of unchanged polls at `pollRate` per second (paced, at most CONNECTIONS in flight), walking the
 * nodes round-robin, each on its node's own connection; the api's CPU from /proc over the round. At the default
 * rate each node polls every 1.25 s, past the api's one-second hold, so every poll confirms its node's standing
 * in the database as a real agent's does (it polls every 60 s): the bench measures what a fleet costs, and both
 * builds do the same work per poll whatever their speed. DPoP proofs come from the nodes' pools, made before
 * the round (not timed: the agent's TPM signs them, not the api).
 */
async function pollRound(arm, seconds) {
  const { api, nodes, credentials } = arm;
  const port = Number(new URL(api.base).port);
  let next = 0;
  let polls = 0;
  let opened = 0;
  let late = 0;
  let failed;
  const cpu0 = processCpuSeconds(api.pid);
  const t0 = monotonicMicros();
  const started = performance.now();
  const total = Math.round(pollRate * seconds);
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < total && !failed) {
        const i = next++;
        const wait = started + (i * 1000) / pollRate - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        else if (wait < -100) late++;
        const node = nodes[i % nodes.length];
        const { status, reused } = await pollOnce(port, node, credentials.headers(node, node.path));
        if (status !== 200) failed = `HTTP ${status}`;
        if (!reused) opened++;
        polls++;
      }
    }),
  );
  const wall = (performance.now() - started) / 1000;
  const cpu = processCpuSeconds(api.pid) - cpu0;
  if (failed) throw new Error(`${arm.label}: a poll failed: ${failed}`);
  return {
    polls,
    opened,
    late,
    rps: polls / wall,
    cpuUsPerPoll: (cpu * 1e6) / polls,
    window: { start: t0, end: monotonicMicros() },
  };
}

/**
 * The binding's cost on the unchanged director poll: the three arms' apis up at once, then BENCH_ROUNDS
 * rounds of BENCH_ROUND_SECONDS each, arms interleaved, after one warm-up round each (which also opens and
 * binds every node's connection). Each round's ratio compares runs seconds apart; the median over rounds and
 * its spread are reported.
 */
async function compareBinding(dialect, redisUrl, beforeDir) {
  const local = [];
  const dropLocal = async () => {
    for (const fn of local.splice(0).reverse()) await fn();
  };
  cleanups.push(dropLocal);
  try {
    const arms = [];
    for (const arm of bindingArms(beforeDir)) {
      const { api, where } = await openDialect(dialect, redisUrl, arm.build, arm.label, local, arm.env);
      const { nodes, mode } = await seedApi(dialect, api, local, arm.label, arm.build);
      local.push(nodeConnections(nodes));
      arms.push({ ...arm, api, where, nodes, mode, credentials: auth(mode, api.base), rps: 5_000 });
    }
    const loadAtStart = loadavg();
    const round = async (arm) => {
      if (arm.mode === 'dpop') {
        fillProofs(arm.nodes, arm.api.base, Math.ceil((pollRate * roundSeconds) / arm.nodes.length) + 1);
      }
      const result = await pollRound(arm, roundSeconds);
      arm.rps = result.rps;
      for (const node of arm.nodes) node.proofs = [];
      return result;
    };
    log(
      `${dialect}: binding comparison, a warm-up round each, then ${rounds} rounds of ${roundSeconds} s per arm`,
    );
    for (const arm of arms) await round(arm);
    for (const arm of arms) arm.credentials.live.count = 0;
    // Paced below what each build answers: a round that falls behind its pace measures the machine instead.
    const { results, loads } = await interleaved(arms, rounds, round);
    const behind = arms.flatMap((a) => results.get(a)).reduce((n, r) => n + r.late, 0);
    if (behind > 0)
      log(`warning: ${behind} polls started over 100 ms behind the pace (lower BENCH_POLL_RATE)`);
    const died = arms.map((a) => a.api.died()).find(Boolean);
    if (died)
      throw new Error(`${died.name} exited during the rounds (code ${died.code}, signal ${died.signal})`);
    const profiles = new Map();
    if (profiling) {
      for (const arm of arms) {
        const profile = await arm.api.stopForProfile();
        const runs = results.get(arm);
        const polls = runs.reduce((n, r) => n + r.polls, 0);
        const windows = runs.map((r) => r.window);
        if (profile) {
          // Kept past the api's data dir, with its windows, for bench/lib/cpu-profile-share.mjs.
          const kept = join(profileRoot, `${dialect}-${arm.label.replace(/[^a-z0-9]+/gi, '-')}`);
          mkdirSync(kept, { recursive: true });
          copyFileSync(profile.path, join(kept, 'api.cpuprofile'));
          writeFileSync(join(kept, 'windows.json'), JSON.stringify({ windows, operations: polls }));
          profiles.set(arm.label, {
            ...profileSummary(profile, windows, polls, 14),
            binding: profileShare(profile, { entries: BINDING_ENTRIES, windows }),
            kept,
          });
        }
      }
    }
    return {
      dialect,
      where: arms.map((a) => `${a.label}: ${a.where}`),
      arms: arms.map((a) => ({
        label: a.label,
        mode: a.mode,
        runs: results.get(a),
        live: a.credentials.live.count,
      })),
      loads: { atStart: loadAtStart, perRound: loads, atEnd: loadavg() },
      profiles,
    };
  } finally {
    cleanups.splice(cleanups.indexOf(dropLocal), 1);
    await dropLocal();
  }
}

/** The comparison's report: per arm the median over rounds, then per-round ratios to `before`. */
function printComparison(c) {
  const [before, ...afters] = c.arms;
  const medianOf = (runs, key) => spread(runs.map((r) => r[key])).median;
  const out = [
    '',
    `${c.dialect}: the binding's cost on the unchanged director poll, ${rounds} interleaved rounds of ` +
      `${roundSeconds} s per build (order rotating each round), ${int(nodeCount)} nodes, one kept-alive connection ` +
      `per node, ${int(pollRate)} polls/s (each node every ${fixed(nodeCount / pollRate)} s), at most ${CONNECTIONS} in flight. Load average at the start ${c.loads.atStart.map((l) => l.toFixed(2)).join(' ')}, ` +
      `at the end ${c.loads.atEnd.map((l) => l.toFixed(2)).join(' ')} (${availableParallelism()} cores).`,
    ...c.where.map((w) => `  ${w}`),
    '',
    ...table([
      [
        'build',
        'tokens',
        'polls/s (median)',
        'api CPU µs/poll (median)',
        'IQR over rounds',
        'new connections',
      ],
      ...c.arms.map((a) => {
        const s = spread(a.runs.map((r) => r.cpuUsPerPoll));
        return [
          a.label,
          a.mode === 'dpop' ? 'DPoP-bound' : 'bearer',
          int(medianOf(a.runs, 'rps')),
          fixed(s.median, 1),
          `${fixed(s.q1, 1)}-${fixed(s.q3, 1)}`,
          int(a.runs.reduce((n, r) => n + r.opened, 0)),
        ];
      }),
    ]),
    '',
  ];
  for (const after of afters) {
    const cpu = spread(
      roundRatios(
        after.runs.map((r) => r.cpuUsPerPoll),
        before.runs.map((r) => r.cpuUsPerPoll),
      ),
    );
    const rps = spread(
      roundRatios(
        after.runs.map((r) => r.rps),
        before.runs.map((r) => r.rps),
      ),
    );
    out.push(
      `binding cost, director poll ${c.dialect}, ${after.label}: api CPU per poll after/before ${describeSpread(cpu)};` +
        ` polls/s after/before ${describeSpread(rps)}` +
        ` (aim: at most +10%: ${cpu.median <= 1.1 ? 'met' : 'NOT met'} by the median` +
        `${cpu.q3 <= 1.1 ? ', and by the upper quartile' : cpu.median <= 1.1 ? ', not by the upper quartile' : ''})`,
    );
    const us = spread(after.runs.map((r, i) => r.cpuUsPerPoll - before.runs[i].cpuUsPerPoll));
    out.push(`  api CPU per poll, after - before: ${describeSpread(us, 1)} µs`);
    if (after.live > 0)
      out.push(`  (${int(after.live)} proofs were signed in the request loop: the pool ran out)`);
  }
  for (const [label, p] of c.profiles)
    out.push(...printProfile(`${c.dialect} binding comparison, ${label}`, p));
  out.push('');
  return out;
}

// --- CPU profile (BENCH_PROFILE=1): the api's main thread inside the measured windows, per poll.

/**
 * What a sample was doing. A dependency the poll calls owns everything below it (ECDSA under jose, socket
 * writes under ioredis or pg); the rest goes to the innermost frame of a known kind. Each list: innermost
 * matching frame wins. Whole stacks count, since after an `await` a stack starts at the resumed function.
 */
const DEPENDENCIES = [
  ['access token: jose + WebCrypto ECDSA verify', (f) => /node_modules\/jose\//.test(f.url)],
  ['revoked check: ioredis', (f) => /node_modules\/(ioredis|redis-parser|denque)\//.test(f.url)],
  [
    'database: driver (better-sqlite3, pg)',
    (f) => /node_modules\/(better-sqlite3|pg|pg-[a-z-]+)\/|kysely\/.*(sqlite|postgres)-driver/.test(f.url),
  ],
  ['database: kysely (build, compile, run)', (f) => /node_modules\/kysely\//.test(f.url)],
  [
    'signing: ed25519 + canonical JSON',
    (f) => f.functionName === 'signNodeSet' || /dist\/libs\/tuf-signing\/|node_modules\/@tufjs\//.test(f.url),
  ],
];
const GENERAL = [
  ['HTTP: node:http + net', (f) => /^node:(_http|net|internal\/(http|streams|stream_base))/.test(f.url)],
  ['HTTP: fastify', (f) => /node_modules\/(fastify|@fastify|find-my-way|avvio|fast-[a-z-]+)\//.test(f.url)],
  ['HTTP: nest', (f) => /node_modules\/(@nestjs|rxjs)\//.test(f.url)],
  ['logging: pino', (f) => /node_modules\/(pino|pino-[a-z-]+|nestjs-pino|sonic-boom)\//.test(f.url)],
  ['Otter code (guard, controller, libs)', (f) => /dist\/(libs|apps)\//.test(f.url)],
  ['V8: garbage collector', (f) => f.functionName === '(garbage collector)'],
];

/** frames: leaf first. */
function activityOf(frames) {
  for (const list of [DEPENDENCIES, GENERAL]) {
    for (const frame of frames) {
      const found = list.find(([, test]) => test(frame));
      if (found) return found[0];
    }
  }
  return 'other (event loop, microtasks, ...)';
}

function profileSummary(profile, windows, polls, top = 8) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const known = new Map();
  const activityAt = (id) => {
    let found = known.get(id);
    if (found) return found;
    const frames = [];
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) frames.push(byId.get(cur).callFrame);
    found = activityOf(frames);
    known.set(id, found);
    return found;
  };
  const activities = new Map();
  const functions = new Map();
  let busy = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample stands for the time up to the next one.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    t += profile.timeDeltas[i];
    if (!windows.some((w) => t >= w.start && t <= w.end)) continue;
    const id = profile.samples[i];
    const { functionName, url } = byId.get(id).callFrame;
    if (functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const activity = activityAt(id);
    activities.set(activity, (activities.get(activity) ?? 0) + dt);
    const fn = `${functionName || '(anonymous)'}${url ? ` ${url.replace(/^.*node_modules\/|^.*\/dist\//, '')}` : ''}`;
    functions.set(fn, (functions.get(fn) ?? 0) + dt);
  }
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]);
  return { polls, busy, idle, activities: sorted(activities), functions: sorted(functions).slice(0, top) };
}

function printProfile(title, p) {
  const perPoll = (us) => fixed(us / p.polls, 1);
  const share = (us) => `${fixed((100 * us) / Math.max(1, p.busy), 1)}%`;
  const binding = p.binding
    ? [
        '',
        "  The binding's own functions and all they call (bench/lib/cpu-profile-share.mjs), per poll:",
        ...describeShare(p.binding, p.polls).map((l) => `  ${l}`),
        `  reproduce: node bench/lib/cpu-profile-share.mjs ${join(p.kept, 'api.cpuprofile')} --windows ` +
          `${join(p.kept, 'windows.json')} ${BINDING_ENTRIES.map((e) => `'${e}'`).join(' ')}`,
      ]
    : [];
  return [
    '',
    `Profile of the api's main thread, ${title}: busy ${perPoll(p.busy)} us per poll` +
      ` (${int(p.polls)} polls), idle ${fixed((100 * p.idle) / Math.max(1, p.busy + p.idle), 0)}% of the time.` +
      ' Sampled on wall time: on a busy machine, time the thread waited for a core counts too.',
    ...table([
      ['where the time goes (first match on the stack)', 'us/poll', 'share'],
      ...p.activities.map(([activity, us]) => [activity, perPoll(us), share(us)]),
    ]).map((l) => `  ${l}`),
    '',
    ...table([
      ['busiest functions (self time)', 'us/poll', 'share'],
      ...p.functions.map(([fn, us]) => [fn, perPoll(us), share(us)]),
    ]).map((l) => `  ${l}`),
    ...binding,
  ];
}

// --- Report.

const int = (n) => Math.round(n).toLocaleString('en-US');
const fixed = (n, digits = 2) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

function printDialect(r) {
  const runs = [r.unchanged, r.regenerated, r.floor, r.bare];
  const ratio = (run) => run.rps / r.bare.rps;
  const out = [
    '',
    `${r.dialect}: ${r.where}`,
    `${int(nodeCount)} nodes; timestamp.json ${r.bodyBytes} bytes; ${CONNECTIONS} connections, pipelining 1.` +
      ` Regenerated: ${r.regenerated.rounds} rounds of ${int(nodeCount)} polls, each after an assignMany of` +
      ` every node (median ${int(r.regenerated.bumpMs)} ms, not timed; its p50 and p99 are the worst round's). api floor: GET ${IMAGE_TIMESTAMP_PATH}` +
      ' on the same api (a plain Fastify route, no token, no database): a reference, not an aim.',
    '',
    ...table([
      [
        'run',
        'req/s',
        'x bare',
        'p50 ms',
        'p99 ms',
        'non-2xx',
        'errors',
        'status',
        'api cores',
        'api CPU ms/req',
      ],
      ...runs.map((run) => [
        run.label,
        int(run.rps),
        fixed(ratio(run)),
        fixed(run.p50),
        fixed(run.p99),
        String(run.bad),
        String(run.errors),
        run.statuses,
        fixed(run.apiCores),
        fixed(run.cpuMsPerRequest, 3),
      ]),
    ]),
    '',
    ...[r.unchanged, r.regenerated].map(
      (run) =>
        `${run.label}/bare requests/s: ${fixed(ratio(run))}  (aim >= ${AIM}: ${ratio(run) >= AIM ? 'met' : 'NOT met'})`,
    ),
    `${r.dialect} signing alone: ${fixed(r.signing.microsPerPoll, 0)} µs of CPU per re-signing poll (three roles, ` +
      `canonical JSON and ed25519) caps one core at ${int(r.signing.ceilingPerCore)} re-signing polls/s = ` +
      `${fixed(r.signing.ceilingPerCore / r.bare.rps)} x bare, before any database or HTTP work`,
  ];
  if (r.profile) {
    for (const [name, p] of Object.entries(r.profile)) out.push(...printProfile(`${r.dialect} ${name}`, p));
  }
  out.push('');
  process.stdout.write(out.join('\n'));
}

async function main() {
  warnIfBusy(log, 'the ratios');
  const redisUrl = await ensureRedis(infra, {
    REDIS_URL: process.env.REDIS_URL ?? process.env.OTTER_TEST_REDIS_URL,
  });
  cleanups.push(() => infra.stop());
  const beforeDir = beforeBuildDir(root, log);
  const results = [];
  const comparisons = [];
  for (const dialect of dialects) {
    // This build against the bare server, with the proof checked once per connection: the default where the
    // api holds TLS (per request, the comparison below has it).
    if (!comparisonOnly) {
      results.push(
        await runDialect(dialect, redisUrl, buildDir, 'this build', 5_000, {
          OTTER_DPOP_CONNECTION_BINDING: 'true',
        }),
      );
    }
    if (beforeDir) comparisons.push(...printComparison(await compareBinding(dialect, redisUrl, beforeDir)));
  }
  process.stdout.write(
    `\nDirector polls: GET /tuf/director/<node>/metadata/timestamp.json with the node's access token, next to` +
      ` a bare node:http server with the same body (${availableParallelism()} cores` +
      `${profiling ? ', api under --cpu-prof: rates include its overhead' : ''})\n`,
  );
  for (const r of results) printDialect(r);
  process.stdout.write(
    '\n' +
      results
        .flatMap((r) =>
          [r.unchanged, r.regenerated].map((run) => {
            const ratio = run.rps / r.bare.rps;
            return `${run.label}: ${fixed(ratio)} x bare, aim >= ${AIM} ${ratio >= AIM ? 'met' : 'NOT met'}`;
          }),
        )
        .join('\n') +
      '\n' +
      comparisons.join('\n') +
      '\n',
  );
}

await runBench(main, log, cleanup);
