#!/usr/bin/env node
// `make bench`: how many TPM quote verifications per second Otter's api completes, through HTTP and with the
// verdict written to the database, next to the bare ECDSA P-256 verification rate of node:crypto on one core,
// measured in the same run. The aim: >= 0.5 x bare crypto per core, and 1M nodes attesting every 15 minutes
// (1,111 attestations/s) served by 2 cores.
//
// The built api runs on a fresh data dir (SQLite), a free port and loopback only. BENCH_NODES simulated nodes
// have no TPM: their AK and device key are software P-256 keys in TPM2B_PUBLIC form, inserted as active nodes
// straight into the api's SQLite database (WAL, so safe alongside the api). Each gets an access token through
// the real POST /api/v1/devices/token. One verification is then what an agent does: POST
// .../me/attestation/challenge, a quote over that nonce in the TPM's format signed by the AK, and POST
// .../me/attestation, answered with a stored, passing verdict.
//
//   node bench/attestation.bench.mjs    # BENCH_SECONDS (default 10) of load after a 2 s warm-up
//
// Each simulated node attests on a connection of its own, as every agent keeps its own (never two nodes' requests
// on one connection), kept alive across its attestations, or new for each one with BENCH_FRESH_CONNECTIONS=1.
//
// Before and after: with BENCH_BEFORE_REF (a commit; `make bench` names the last one before device tokens
// were bound to the TPM key) or BENCH_BEFORE_BUILD_DIR, the same load also runs against that build's api and
// against this build with the proof checked per connection, in the same run: after one warm-up each,
// BENCH_ROUNDS rounds of BENCH_ROUND_SECONDS per build, interleaved (A B C, B C A, ...). Each round gives a
// ratio of api CPU per verification after/before; the median and its spread over the rounds are printed, so
// the machine's noise is visible next to the number. The build under test binds tokens (DPoP, RFC 9449): each
// of its two requests per verification carries a proof signed by the node's device key, made by this load
// generator like the quote; the before build takes plain bearer tokens.
//
// With BENCH_PROFILE=1 the apis run under --cpu-prof and, after the load, the report gives the binding's share of
// each one's main thread per verification: the time under the binding's entry functions (BINDING_ENTRIES, found
// by call tree with bench/lib/cpu-profile-share.mjs) against all its busy time inside the measured windows.
// Without BENCH_BEFORE_REF this build's two modes (per request, per connection) run in interleaved rounds. The
// profiles and their windows are kept in BENCH_PROFILE_DIR (default .otter-bench/profiles/attestation-<time>).
//
// Exits non-zero only when something failed to run (a verification refused, a count that does not match),
// never because of a ratio.
import { createHash, createPublicKey, randomBytes, randomUUID, verify } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { SignJWT } from 'jose';
import { ProcessGroup, ensureRedis, freePort, waitForHttp } from '../scripts/lib/processes.mjs';
import {
  AK_ATTRIBUTES,
  DEVICE_KEY_ATTRIBUTES,
  softwareQuote,
  softwareTpmKey,
} from './lib/software-quote.mjs';
import { beforeBuildDir } from './lib/before-build.mjs';
import { benchArgs } from './lib/bench-cli.mjs';
import { dpopHeaders, dpopKey, isBoundToken } from './lib/dpop.mjs';
import { cleanupOnExit } from './lib/cleanups.mjs';
import { BINDING_ENTRIES, describeShare, profileShare } from './lib/cpu-profile-share.mjs';
import { describeSpread, interleaved, roundRatios, spread } from './lib/interleave.mjs';
import { processCpuSeconds } from './lib/process-cpu.mjs';
import { runBench, table, warnIfBusy } from './lib/report.mjs';

const AIM_RATIO = 0.5;
const FLEET = 1_000_000;
const FLEET_PERIOD_SECONDS = 15 * 60;
const MACHINE_CORES = 2;
const WARMUP_SECONDS = 2;
const BARE_SECONDS = 3;
const PCRS = [0, 1, 2, 3, 4, 5, 6, 7];
const CHALLENGE_PATH = '/api/v1/devices/me/attestation/challenge';
const ATTEST_PATH = '/api/v1/devices/me/attestation';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => process.stderr.write(`[bench] ${message}\n`);

benchArgs(
  log,
  'usage: node bench/attestation.bench.mjs\n' +
    `  BENCH_SECONDS      seconds of measured load (default 10), after a ${WARMUP_SECONDS} s warm-up\n` +
    '  BENCH_NODES        simulated nodes (default 200)\n' +
    '  BENCH_CONCURRENCY  concurrent workers, each attesting its own share of the nodes (default 32)\n' +
    '  BENCH_BUILD_DIR    directory whose dist/ holds the built api (default: this repository)\n' +
    '  BENCH_BEFORE_REF   a commit to compare against, built once into .otter-bench/ (or\n' +
    '  BENCH_BEFORE_BUILD_DIR, a directory with that build); unset: no comparison\n' +
    '  BENCH_ROUNDS       interleaved rounds of the comparison (default 8)\n' +
    '  BENCH_ROUND_SECONDS  seconds of each round per build (default 3)\n' +
    '  BENCH_FRESH_CONNECTIONS=1  a new connection per attestation (default: each node keeps its own)\n' +
    "  BENCH_PROFILE=1    the apis under --cpu-prof; report the binding's share of their CPU (both modes)\n" +
    '  BENCH_PROFILE_DIR  where the profiles are kept (default .otter-bench/profiles/attestation-<time>)\n',
);
const positive = (name, fallback, integer) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    log(
      `${name} must be a positive ${integer ? 'integer' : 'number'}, not ${JSON.stringify(process.env[name])}`,
    );
    process.exit(2);
  }
  return value;
};
const seconds = positive('BENCH_SECONDS', 10, false);
const nodeCount = positive('BENCH_NODES', 200, true);
const concurrency = positive('BENCH_CONCURRENCY', 32, true);
const rounds = positive('BENCH_ROUNDS', 8, true);
const roundSeconds = positive('BENCH_ROUND_SECONDS', 3, false);
const freshConnections = process.env.BENCH_FRESH_CONNECTIONS === '1';
const profiling = process.env.BENCH_PROFILE === '1';
const profileRoot = resolve(
  process.env.BENCH_PROFILE_DIR ??
    join(root, '.otter-bench', 'profiles', `attestation-${new Date().toISOString().replace(/[:.]/g, '-')}`),
);
if (nodeCount < concurrency) {
  // A node is attested by one worker only: two quotes of one TPM in flight at once could reach the api out
  // of clock order and be refused as a rollback, as they should be.
  log(`BENCH_NODES (${nodeCount}) must be at least BENCH_CONCURRENCY (${concurrency})`);
  process.exit(2);
}
const buildDir = resolve(process.env.BENCH_BUILD_DIR ?? root);

const group = new ProcessGroup({ graceMs: 10_000 });
/** @type {{ name: string, code: number | null, signal: string | null } | undefined} */
let died;
void group.unexpectedExit.then((exit) => {
  died = exit;
});
const { cleanups, cleanup } = cleanupOnExit(log);

/** A file of the build, which must exist. */
function builtFile(...path) {
  return builtFileOf(buildDir, ...path);
}

function builtFileOf(dir, ...path) {
  const file = join(dir, 'dist', ...path);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`make bench\`, which builds first`);
  return file;
}

/** Starts the api built in `build` on embedded defaults (SQLite) in a fresh data dir, plus `extraEnv`. */
async function startOtter(build, extraEnv = {}, profileDir = undefined) {
  const entry = builtFileOf(build, 'apps', 'api', 'src', 'main.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-bench-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  cleanups.push(() => group.stop());
  // Nothing from the caller's Otter configuration leaks in, as in timestamp.bench.mjs.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('OTTER_') && name !== 'DATABASE_URL'),
  );
  env.REDIS_URL = await ensureRedis(group, process.env);
  const port = await freePort();
  Object.assign(env, {
    OTTER_DATA_DIR: dataDir,
    OTTER_HOST: '127.0.0.1',
    OTTER_PORT: String(port),
    OTTER_LOG_LEVEL: 'warn',
    // Its own Redis keys (nonces, jtis, revocations), whatever else uses this Redis.
    OTTER_QUEUE_PREFIX: `bench${randomBytes(5).toString('hex')}`,
    // Tokens are fetched once, before the load: they must outlive it.
    OTTER_DEVICE_TOKEN_TTL: String(Math.max(600, Math.ceil(seconds + WARMUP_SECONDS + 300))),
    // Every simulated node fetches its token from this one address within a few seconds.
    OTTER_RATE_LIMIT_LOGIN_PER_ADDRESS: String(Math.max(3000, nodeCount)),
    ...extraEnv,
  });
  // Written when the api exits (group.stop()); 250 µs between samples, as director-poll.bench.mjs.
  const nodeArgs = profileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=250']
    : [];
  const api = group.start(`api ${build}`, process.execPath, [...nodeArgs, entry], { env, cwd: build });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/health`, { process: api, accept: (s) => s === 200, timeoutMs: 120_000 });
  return {
    port,
    dataDir,
    dbFile: join(dataDir, 'otter.sqlite'),
    pid: api.child.pid,
    redisUrl: env.REDIS_URL,
    agent: new Agent({ keepAlive: true, maxSockets: concurrency + 4 }),
  };
}

// --- HTTP: node:http with keep-alive, the cheapest client at hand (it shares the machine with the api).

/**
 * @param {{ port: number, agent: Agent }} otter
 * @param {string} path
 * @param {{ headers?: Record<string, string>, json?: unknown }} [options]
 * @returns {Promise<{ status: number, body: any }>}
 */
function post(otter, path, { headers: extra = {}, json, agent = otter.agent } = {}) {
  return new Promise((resolvePost, reject) => {
    const body = json === undefined ? '' : JSON.stringify(json);
    /** @type {Record<string, string | number>} */
    const headers = { 'content-length': Buffer.byteLength(body), ...extra };
    if (json !== undefined) headers['content-type'] = 'application/json';
    const req = request(
      { host: '127.0.0.1', port: otter.port, path, method: 'POST', headers, agent },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text;
          }
          resolvePost({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A node's credentials for one POST to `path`: a bearer token, or with a bound token its DPoP proof. */
function authFor(otter, node, path) {
  if (!node.bound) return { authorization: `Bearer ${node.token}` };
  return dpopHeaders(node.dpop, node.token, 'POST', `http://127.0.0.1:${otter.port}${path}`);
}

// --- Simulated nodes.

const pcrValues = new Map(
  PCRS.map((pcr) => [pcr, createHash('sha256').update(`otter-bench boot measurement ${pcr}`).digest()]),
);
const pcrValuesHex = Object.fromEntries(
  [...pcrValues].map(([pcr, value]) => [String(pcr), value.toString('hex')]),
);
const RESET_COUNT = 7;
const RESTART_COUNT = 2;

/**
 * @typedef {object} SimulatedNode
 * @property {string} id
 * @property {ReturnType<typeof softwareTpmKey>} ak
 * @property {ReturnType<typeof softwareTpmKey>} device
 * @property {bigint} clock  the TPM clock of its next quote; only grows
 * @property {string} [token]
 */

/** Software keys for `count` nodes, inserted as active nodes whose pinned PCRs are the values they quote. */
function seedNodes(dbFile, count) {
  /** @type {SimulatedNode[]} */
  const nodes = Array.from({ length: count }, () => ({
    id: randomUUID(),
    ak: softwareTpmKey(AK_ATTRIBUTES),
    device: softwareTpmKey(DEVICE_KEY_ATTRIBUTES),
    clock: 1_000_000n + BigInt(Math.floor(Math.random() * 1e9)),
  }));
  for (const node of nodes) node.dpop = dpopKey(node.device.privateKey, node.device.publicKey);
  const db = new Database(dbFile);
  try {
    db.pragma('busy_timeout = 10000');
    const insert = db.prepare(
      `INSERT INTO nodes (id, hardware_id, state, ek_public_sha256, ek_cert_serial, ek_cert_issuer, ak_public,
         device_public, device_cert_serial, device_cert_not_after, pinned_pcrs, running_version,
         tpm_reset_count, tpm_restart_count, tpm_clock, integrity_failed_at, created_at, updated_at)
       VALUES (@id, 'bench-board', 'active', @ek, @serial, 'CN=otter-bench software TPM', @ak, @device,
         @deviceSerial, @notAfter, @pinned, NULL, NULL, NULL, NULL, NULL, @now, @now)`,
    );
    const now = new Date().toISOString();
    const notAfter = new Date(Date.now() + 86_400_000).toISOString();
    const pinned = JSON.stringify(pcrValuesHex);
    db.transaction(() => {
      for (const node of nodes) {
        insert.run({
          id: node.id,
          ek: randomBytes(32).toString('hex'),
          serial: randomBytes(8).toString('hex'),
          ak: node.ak.tpm2bPublic.toString('base64'),
          device: node.device.tpm2bPublic.toString('base64'),
          deviceSerial: randomBytes(8).toString('hex'),
          notAfter,
          pinned,
          now,
        });
      }
    })();
  } finally {
    db.close();
  }
  return nodes;
}

/** An access token for `node`, traded for an ES256 assertion signed with its device key. */
async function fetchToken(otter, node) {
  const iat = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(node.id)
    .setSubject(node.id)
    .setAudience('otter:device-auth')
    .setIssuedAt(iat)
    .setExpirationTime(iat + 60)
    .setJti(randomBytes(16).toString('base64url'))
    .sign(node.device.privateKey);
  const res = await post(otter, '/api/v1/devices/token', { json: { assertion } });
  if (res.status !== 200 || typeof res.body?.accessToken !== 'string') {
    throw new Error(`token for node ${node.id}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  }
  node.token = res.body.accessToken;
  node.bound = isBoundToken(node.token);
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function eachLimited(items, limit, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

function quoteFor(node, nonce) {
  node.clock += 1000n;
  return softwareQuote({
    akPrivateKey: node.ak.privateKey,
    akName: node.ak.name,
    nonce,
    pcrValues,
    clock: node.clock,
    resetCount: RESET_COUNT,
    restartCount: RESTART_COUNT,
  });
}

/**
 * One verification as an agent makes it: challenge, quote over its nonce, attestation. Resolves with the
 * verdict, or throws with what the api answered.
 */
async function attestOnce(otter, node, agent = otter.agent) {
  const challenge = await post(otter, CHALLENGE_PATH, {
    headers: authFor(otter, node, CHALLENGE_PATH),
    agent,
  });
  if (challenge.status !== 201 || typeof challenge.body?.nonce !== 'string') {
    throw new Error(`challenge: HTTP ${challenge.status} ${JSON.stringify(challenge.body)}`);
  }
  const { attest, signature } = quoteFor(node, Buffer.from(challenge.body.nonce, 'hex'));
  const res = await post(otter, ATTEST_PATH, {
    agent,
    headers: authFor(otter, node, ATTEST_PATH),
    json: {
      nonce: challenge.body.nonce,
      quote: {
        attest: attest.toString('base64'),
        signature: signature.toString('base64'),
        pcrValues: pcrValuesHex,
      },
    },
  });
  if (res.status !== 200 || res.body?.passed !== true) {
    throw new Error(`attestation: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

// --- CPU accounting: who used the 2 cores during the measured window.

function machineTimes() {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    total += all;
    busy += all - times.idle;
  }
  return { busy, total };
}

function cpuSample(apiPid) {
  const self = process.cpuUsage();
  return {
    at: performance.now(),
    api: processCpuSeconds(apiPid),
    bench: (self.user + self.system) / 1e6,
    machine: machineTimes(),
  };
}

/** Cores used between two samples by the api, this process and the machine as a whole. */
function coresBetween(a, b) {
  const wall = (b.at - a.at) / 1000;
  const machine =
    ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total || 1)) * cpus().length;
  return {
    api: a.api === undefined || b.api === undefined ? undefined : (b.api - a.api) / wall,
    bench: (b.bench - a.bench) / wall,
    machine,
  };
}

// --- The load.

/**
 * `concurrency` workers, each attesting its own nodes in turn, for `warmup` seconds and then `seconds`; counts
 * verifications completed inside the measured window.
 */
async function runLoad(otter, nodes, apiPid, { warmup = WARMUP_SECONDS, measured = seconds } = {}) {
  const shares = Array.from({ length: concurrency }, (_, w) => nodes.filter((_, i) => i % concurrency === w));
  const latencies = [];
  /** @type {string[]} */
  const failures = [];
  let passed = 0;
  let stop = false;
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let inWindow = 0;
  /** The measured window on the clock of a CPU profile (process.hrtime, µs), the same in every process. */
  const window = {};

  // Each node on a connection of its own, as each agent keeps its own: kept alive across its attestations (an
  // agent polling every 60 s keeps its connection within the api's 72 s keep-alive), or with
  // BENCH_FRESH_CONNECTIONS=1 a new one per attestation (an agent whose connection lapsed since its last
  // cycle: with the binding checked per connection, every attestation then pays one full proof check). A
  // connection never carries two nodes' requests, which no agent does.
  const worker = async (share) => {
    for (let i = 0; !stop; i++) {
      const node = share[i % share.length];
      if (freshConnections) {
        node.connection?.destroy();
        node.connection = undefined;
      }
      node.connection ??= new Agent({ keepAlive: true, maxSockets: 1 });
      const started = performance.now();
      try {
        await attestOnce(otter, node, node.connection);
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
        // The api gone or refusing everything: stop rather than spin on errors.
        if (failures.length >= 20 || /ECONNREFUSED|ECONNRESET/.test(String(error))) stop = true;
        continue;
      }
      passed++;
      const done = performance.now();
      if (done >= windowStart && done <= windowEnd) {
        inWindow++;
        latencies.push(done - started);
      }
    }
  };

  log(`load: ${concurrency} workers over ${nodes.length} nodes, ${warmup} s warm-up + ${measured} s`);
  const running = Promise.all(shares.map(worker));
  /** @type {ReturnType<typeof cpuSample> | undefined} */
  let first;
  /** @type {ReturnType<typeof cpuSample> | undefined} */
  let last;
  const timers = new Promise((done) => {
    setTimeout(() => {
      first = cpuSample(apiPid);
      windowStart = first.at;
      windowEnd = windowStart + measured * 1000;
      window.start = monotonicMicros();
      setTimeout(() => {
        last = cpuSample(apiPid);
        windowEnd = last.at;
        window.end = monotonicMicros();
        stop = true;
        done(undefined);
      }, measured * 1000);
    }, warmup * 1000);
  });
  await Promise.race([timers, running]);
  stop = true;
  await running;
  if (!first || !last) throw new Error(`the load stopped early: ${failures[0] ?? 'no verification ran'}`);
  latencies.sort((x, y) => x - y);
  const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const wall = (last.at - first.at) / 1000;
  return {
    rate: inWindow / wall,
    inWindow,
    window,
    passed,
    failures,
    p50: pick(0.5),
    p99: pick(0.99),
    cores: coresBetween(first, last),
  };
}

const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

// --- Bare node:crypto, in this process, on one core (the api is idle by then).

/** Calls `fn` in a tight loop for `duration` seconds; per wall second and per CPU second of this process. */
function loopRate(fn, duration) {
  for (let i = 0; i < 500; i++) fn();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  do {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
  } while (performance.now() - t0 < duration * 1000);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: n / wall, perCpuSecond: n / ((cpu.user + cpu.system) / 1e6) };
}

function measureBare(wire, lib, node) {
  const nonce = randomBytes(32);
  const { attest, signature } = quoteFor(node, nonce);
  const derSignature = wire.ecdsaSignatureToDer(wire.parseTpmtSignatureEcdsa(signature));
  const jwk = node.ak.publicKey.export({ format: 'jwk' });
  const cachedKey = createPublicKey({ key: jwk, format: 'jwk' });
  const check = (ok) => {
    if (!ok) throw new Error('bare verification of the benchmark quote failed');
  };
  check(verify('sha256', attest, cachedKey, derSignature));
  log(`bare crypto.verify on one core: ${BARE_SECONDS} s per variant`);
  const cached = loopRate(() => verify('sha256', attest, cachedKey, derSignature), BARE_SECONDS);
  const rebuilt = loopRate(
    () => verify('sha256', attest, createPublicKey({ key: jwk, format: 'jwk' }), derSignature),
    BARE_SECONDS,
  );
  // What AttestationService does per request, minus HTTP and storage: parse the stored TPM2B_PUBLIC (so a
  // fresh KeyObject each time) and verify the quote with every check.
  const verifyInput = () => ({
    akPublic: lib.parseTpm2bPublic(node.ak.tpm2bPublic),
    attest,
    signature,
    expectedNonce: nonce,
    pcrValues: pcrValuesHex,
    requiredPcrs: PCRS,
  });
  const library = loopRate(() => lib.verifyQuote(verifyInput()), BARE_SECONDS);
  return { cached, rebuilt, library };
}

/** The quote builder against libs/attestation, before any load: a good quote passes, a forged one does not. */
function checkQuoteBuilder(lib, node) {
  const akPublic = lib.parseTpm2bPublic(node.ak.tpm2bPublic);
  const ak = lib.checkAttestationKey(akPublic);
  if (!ak.name.equals(node.ak.name)) throw new Error('AK name differs from libs/attestation tpmObjectName');
  lib.checkDeviceKey(lib.parseTpm2bPublic(node.device.tpm2bPublic));
  const nonce = randomBytes(32);
  const clockBefore = node.clock;
  const { attest, signature } = quoteFor(node, nonce);
  const verified = lib.verifyQuote({
    akPublic,
    attest,
    signature,
    expectedNonce: nonce,
    pcrValues: pcrValuesHex,
    requiredPcrs: PCRS,
    previous: { resetCount: RESET_COUNT, restartCount: RESTART_COUNT, clock: clockBefore },
  });
  if (verified.clock !== node.clock || verified.pcrs.join() !== PCRS.join()) {
    throw new Error(
      `verifyQuote read back other values: ${JSON.stringify({ ...verified, clock: String(verified.clock), firmwareVersion: String(verified.firmwareVersion) })}`,
    );
  }
  const forged = Buffer.from(attest);
  forged[forged.length - 1] ^= 1;
  try {
    lib.verifyQuote({ akPublic, attest: forged, signature, expectedNonce: nonce, pcrValues: pcrValuesHex });
  } catch (error) {
    if (/** @type {{ code?: string }} */ (error).code === 'QUOTE_SIGNATURE_INVALID') return;
    throw error;
  }
  throw new Error('verifyQuote accepted a quote with a changed byte: the check is not checking');
}

function verdictCounts(dbFile) {
  const db = new Database(dbFile, { readonly: true });
  try {
    db.pragma('busy_timeout = 10000');
    return /** @type {{ n: number, passed: number | null }} */ (
      db.prepare('SELECT count(*) AS n, sum(passed) AS passed FROM attestation_verdicts').get()
    );
  } finally {
    db.close();
  }
}

function filesystemOf(dir) {
  const names = {
    0xef53: 'ext4',
    0x01021994: 'tmpfs',
    0x794c7630: 'overlayfs',
    0x58465342: 'xfs',
    0x9123683e: 'btrfs',
  };
  try {
    const type = statfsSync(dir).type;
    return names[type] ?? `filesystem 0x${type.toString(16)}`;
  } catch {
    return 'unknown filesystem';
  }
}

const int = (n) => Math.round(n).toLocaleString('en-US');
const fixed = (n, digits = 2) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

function printReport({ load, bare, dataDir, loadBefore, loadAfter, counts, answered }) {
  const apiCores = load.cores.api;
  const perApiCore = apiCores ? load.rate / apiCores : undefined;
  const bareRate = bare.cached.perCpuSecond;
  const needed = FLEET / FLEET_PERIOD_SECONDS;
  const rows = [
    ['run', 'per s', 'per CPU s', 'p50 ms', 'p99 ms'],
    [
      'otter: quote verifications via HTTP + DB',
      int(load.rate),
      perApiCore ? int(perApiCore) : '-',
      fixed(load.p50),
      fixed(load.p99),
    ],
    [
      '  (HTTP requests: 2 per verification)',
      int(load.rate * 2),
      perApiCore ? int(perApiCore * 2) : '-',
      '',
      '',
    ],
    [
      'bare crypto.verify, cached KeyObject',
      int(bare.cached.perSecond),
      int(bare.cached.perCpuSecond),
      '',
      '',
    ],
    [
      'bare crypto.verify, KeyObject per call',
      int(bare.rebuilt.perSecond),
      int(bare.rebuilt.perCpuSecond),
      '',
      '',
    ],
    [
      'verifyQuote (libs/attestation), in-process',
      int(bare.library.perSecond),
      int(bare.library.perCpuSecond),
      '',
      '',
    ],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const c = load.cores;
  const ratio = perApiCore === undefined ? undefined : perApiCore / bareRate;
  const projected = perApiCore === undefined ? undefined : perApiCore * MACHINE_CORES;
  const out = [
    '',
    `Quote verification: ${nodeCount} nodes, ${concurrency} workers, ${seconds} s after ${WARMUP_SECONDS} s warm-up;` +
      ` SQLite on ${filesystemOf(dataDir)}; bare loops ${BARE_SECONDS} s each on one core`,
    `Machine: ${availableParallelism()} cores; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before,` +
      ` ${loadAfter.map((l) => l.toFixed(2)).join(' ')} after`,
    '',
    line(rows[0]),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.slice(1).map(line),
    '',
    `CPU during the load (cores): api ${fixed(c.api)}, this bench (load generator) ${fixed(c.bench)},` +
      ` whole machine ${fixed(c.machine)} of ${cpus().length} (the rest: Redis and anything else running)`,
    `Verdicts in the database: ${counts.n} (${counts.passed ?? 0} passed); passing verdicts the api answered` +
      ` (warm-up and the first check included): ${answered}` +
      ` (${counts.n === answered && counts.passed === answered ? 'match' : 'MISMATCH'})`,
    '',
    `otter/bare per core: ${fixed(ratio)}  (verifications per api CPU-second / bare crypto.verify per CPU-second,` +
      ` cached KeyObject; aim >= ${AIM_RATIO}: ${ratio === undefined ? 'unknown, no /proc' : ratio >= AIM_RATIO ? 'met' : 'NOT met'})`,
    `otter/bare wall-clock: ${fixed(load.rate / bare.cached.perSecond)}  (HTTP verifications/s / bare verify/s, one core each)`,
    '',
    `1M nodes every 15 min: ${int(FLEET)} / ${FLEET_PERIOD_SECONDS} s = ${int(needed)} attestations/s needed.`,
    `  Measured here: ${int(load.rate)}/s from one api process, with the load generator and Redis on the same` +
      ` ${availableParallelism()} cores = ${fixed(load.rate / needed)} of the need.`,
    projected === undefined
      ? '  No per-core figure (no /proc): cannot project to 2 dedicated cores.'
      : `  Projection for ${MACHINE_CORES} cores given to the api alone: ${MACHINE_CORES} x ${int(perApiCore)}/s per api core =` +
        ` ${int(projected)}/s = ${fixed(projected / needed)} of the need (${projected >= needed ? 'met' : 'NOT met'};` +
        ' an estimate: it assumes two api processes scale linearly and the database and Redis run elsewhere).',
    '',
  ];
  process.stdout.write(out.join('\n'));
}

/** An api of one build, with its own nodes and tokens, ready for the load. */
async function prepare(lib, build, label, extraEnv) {
  const profileDir = profiling ? join(profileRoot, label.replace(/[^a-z0-9]+/gi, '-')) : undefined;
  // One profile per directory: an earlier run's, left in a named BENCH_PROFILE_DIR, would be read instead.
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  const otter = await startOtter(build, extraEnv, profileDir);
  cleanups.push(() => otter.agent.destroy());
  log(`${label}: api on 127.0.0.1:${otter.port} (pid ${otter.pid}, ${build}), data dir ${otter.dataDir}`);
  const nodes = seedNodes(otter.dbFile, nodeCount);
  cleanups.push(() => nodes.forEach((n) => n.connection?.destroy()));
  checkQuoteBuilder(lib, nodes[0]);
  await eachLimited(nodes, concurrency, (node) => fetchToken(otter, node));
  const bound = nodes[0].bound;
  log(
    `${label}: ${nodeCount} nodes, access tokens from POST /api/v1/devices/token ` +
      `(${bound ? 'bound to the device key: DPoP proofs' : 'bearer'})`,
  );
  const challenge = await post(otter, CHALLENGE_PATH, { headers: authFor(otter, nodes[0], CHALLENGE_PATH) });
  if (challenge.status !== 201 || challenge.body?.pcrs?.join() !== PCRS.join()) {
    throw new Error(`${label}: first challenge: HTTP ${challenge.status} ${JSON.stringify(challenge.body)}`);
  }
  const first = await attestOnce(otter, nodes[0]);
  log(`${label}: first verification through HTTP: ${first.reason}`);
  return { label, otter, nodes, bound, loads: [], answered: 1, profileDir };
}

/** Checks a build's stored verdicts against what its api answered; returns the problems. */
function checkStored(run) {
  const problems = [];
  const counts = verdictCounts(run.otter.dbFile);
  for (const load of run.loads) {
    if (load.failures.length > 0) {
      problems.push(
        `${run.label}: ${load.failures.length} verification(s) failed; first: ${load.failures[0]}`,
      );
    }
    if (load.inWindow === 0)
      problems.push(`${run.label}: no verification completed inside the measured window`);
  }
  if (counts.n !== run.answered || (counts.passed ?? 0) !== run.answered) {
    problems.push(
      `${run.label}: the database holds ${counts.n} verdicts (${counts.passed ?? 0} passed), the api answered ` +
        `${run.answered} passed`,
    );
  }
  return { counts, problems };
}

/** The before/after table: each build's rounds, and the median of the per-round ratios with their spread. */
function printComparison(before, afters) {
  const cpuUs = (load) => (load.cores.api ? (1e6 * load.cores.api) / load.rate : NaN);
  const rows = [['build', 'tokens', 'per s (median)', 'api CPU µs/verification (median)', 'IQR over rounds']];
  for (const run of [before, ...afters]) {
    const cpu = spread(run.loads.map(cpuUs));
    rows.push([
      run.label,
      run.bound ? 'DPoP-bound' : 'bearer',
      int(spread(run.loads.map((l) => l.rate)).median),
      fixed(cpu.median, 0),
      `${fixed(cpu.q1, 0)}-${fixed(cpu.q3, 0)}`,
    ]);
  }
  const verdicts = afters.flatMap((after) => {
    const cpu = spread(roundRatios(after.loads.map(cpuUs), before.loads.map(cpuUs)));
    const rate = spread(
      roundRatios(
        after.loads.map((l) => l.rate),
        before.loads.map((l) => l.rate),
      ),
    );
    return [
      `binding cost, attestation, ${after.label}: api CPU per verification after/before ${describeSpread(cpu)};` +
        ` verifications/s after/before ${describeSpread(rate)} (aim: at most +10%: ` +
        `${cpu.median <= 1.1 ? 'met' : 'NOT met'} by the median` +
        `${cpu.q3 <= 1.1 ? ', and by the upper quartile' : cpu.median <= 1.1 ? ', not by the upper quartile' : ''})`,
    ];
  });
  const loads = spread(comparisonLoads);
  process.stdout.write(
    [
      '',
      `Before and after binding device tokens to the TPM key, same run: ${rounds} interleaved rounds of ` +
        `${roundSeconds} s per build (order rotating each round), each node on ${freshConnections ? 'a new connection per attestation' : 'a kept-alive connection of its own'}; ` +
        `load average ${fixed(loads.min)}-${fixed(loads.max)} over the rounds (${availableParallelism()} cores):`,
      '',
      ...table(rows),
      '',
      ...verdicts,
      '',
    ].join('\n'),
  );
}

/**
 * The binding's share of one api's main thread over its measured windows (BENCH_PROFILE=1), from its CPU
 * profile, kept with a windows file so that bench/lib/cpu-profile-share.mjs reproduces the numbers.
 */
function printProfileShare(run) {
  const file = run.profileDir && readdirSync(run.profileDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) {
    log(`${run.label}: no CPU profile in ${run.profileDir}`);
    return;
  }
  const windows = run.loads.map((l) => l.window);
  const operations = run.loads.reduce((n, l) => n + l.inWindow, 0);
  const windowsFile = join(run.profileDir, 'windows.json');
  writeFileSync(windowsFile, JSON.stringify({ windows, operations }));
  const profile = join(run.profileDir, file);
  const share = profileShare(JSON.parse(readFileSync(profile, 'utf8')), {
    entries: BINDING_ENTRIES,
    windows,
  });
  const cpuUs = spread(run.loads.map((l) => (1e6 * (l.cores.api ?? NaN)) / l.rate)).median;
  process.stdout.write(
    [
      '',
      `CPU profile, ${run.label} (${run.bound ? 'DPoP-bound' : 'bearer'}), main thread in the measured windows;` +
        ` an operation = one verification (challenge + attest):`,
      ...describeShare(share, operations).map((l) => `  ${l}`),
      `  binding share x api CPU per verification from /proc (${fixed(cpuUs, 0)} µs, median): ` +
        `${fixed((cpuUs * share.total) / Math.max(1, share.busy), 1)} µs`,
      `  reproduce: node bench/lib/cpu-profile-share.mjs ${profile} --windows ${windowsFile} ${BINDING_ENTRIES.map((e) => `'${e}'`).join(' ')}`,
      '',
    ].join('\n'),
  );
}

/** Load averages at the start of each interleaved round. */
let comparisonLoads = [];

async function main() {
  const lib = await import(pathToFileURL(builtFile('libs', 'attestation', 'src', 'index.js')).href);
  // The TPM wire format (signature encodings) lives in its own lib since issue 9.
  const wire = await import(pathToFileURL(builtFile('libs', 'tpm-wire', 'src', 'index.js')).href);
  const beforeDir = beforeBuildDir(root, log);
  const after = await prepare(lib, buildDir, 'after, per request', {
    OTTER_DPOP_CONNECTION_BINDING: 'false',
  });
  const before = beforeDir ? await prepare(lib, beforeDir, 'before') : undefined;
  // The same build with OTTER_DPOP_CONNECTION_BINDING: a proof checked once per connection and key (profiled
  // next to per request even without a before build).
  const perConnection =
    before || profiling
      ? await prepare(lib, buildDir, 'after, per connection', { OTTER_DPOP_CONNECTION_BINDING: 'true' })
      : undefined;

  const loadBefore = warnIfBusy(log, 'the numbers');
  const arms = [before, after, perConnection].filter(Boolean);
  const measure = async (run, options) => {
    const load = await runLoad(run.otter, run.nodes, run.otter.pid, options);
    if (died)
      throw new Error(`${died.name} exited during the load (code ${died.code}, signal ${died.signal})`);
    run.answered += load.passed;
    return load;
  };
  if (arms.length > 1) {
    // Each build warmed up once (its connections opened and, per connection, bound), then short rounds with
    // the builds interleaved, so that a change in the machine's load skews every build alike.
    for (const run of arms) {
      log(`${run.label}: warm-up`);
      await measure(run, { warmup: 0, measured: WARMUP_SECONDS });
    }
    const { results, loads } = await interleaved(arms, rounds, (run) =>
      measure(run, { warmup: 0, measured: roundSeconds }),
    );
    for (const run of arms) run.loads.push(...results.get(run));
    comparisonLoads = loads;
  } else {
    after.loads.push(await measure(after, {}));
  }
  const bare = measureBare(wire, lib, after.nodes[0]);
  const loadAfter = loadavg();
  const checked = arms.map(checkStored);
  // The profiles are written when the apis exit.
  if (profiling) await group.stop();
  const { counts } = checked[0];

  printReport({
    load: after.loads.at(-1),
    bare,
    dataDir: after.otter.dataDir,
    loadBefore,
    loadAfter,
    counts,
    answered: after.answered,
  });
  if (before) printComparison(before, [after, perConnection]);
  if (profiling) for (const run of arms) printProfileShare(run);

  const problems = checked.flatMap((c) => c.problems);
  if (problems.length > 0) throw new Error(problems.join('; '));
}

await runBench(main, log, cleanup);
