#!/usr/bin/env node
// `make bench`: how long a Prometheus scrape of the api's GET /metrics takes with 100,000 nodes, on SQLite and
// on PostgreSQL. The aim: under 100 ms each (median of the scrapes).
//
// The built api (dist/) is started in this process on a loopback port, as main.ts would, over a fresh data dir
// (and a fresh schema on PostgreSQL). The fleet is written as rows, in multi-row inserts: nodes over 4
// hardware ids, 6 running versions and 3 identity states; two verdicts for most nodes (an old passing one and
// the latest: 90 % passed and fresh, 4 % failed, 4 % stale, 2 % of nodes never attested); director metadata
// for every node (targets, snapshot and timestamp rows of about 600 bytes, as signed metadata is, and the
// node's assignment row with their expiries, as the director's commit writes it); one
// running rollout over the first hardware id (3 waves, nodes in several states) and a paused one; a download
// record per node and a few delta builds. Then GET /metrics is fetched over HTTP (full body read) after one
// warm-up: each scrape runs every fleet aggregate (nodes, rollouts, waves, deltas, TUF and director expiry)
// and reads the queue depths from Redis. Baseline from the same run and database: one SELECT count(*) over
// nodes.
//
//   node bench/metrics.bench.mjs
//     BENCH_NODES       simulated nodes (default 100000)
//     BENCH_SCRAPES     timed scrapes per dialect (default 15)
//     BENCH_DIALECTS    sqlite,postgres (default both)
//     BENCH_PROFILE=1   also time each family's collection in-process (median of 3), slowest first
//     OTTER_TEST_DATABASE_URL  PostgreSQL server; a fresh schema is created there and dropped afterwards
//                       (default postgres://postgres@127.0.0.1:5432/test, as scripts/test-services.sh)
//     REDIS_URL, OTTER_TEST_REDIS_URL  Redis (default: a local one, started if none answers)
//
// Exits non-zero only when something failed to run (a scrape that is not 200 or lacks the fleet), never
// because of a time.
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sql } from 'kysely';
import { ProcessGroup, ensureRedis } from '../scripts/lib/processes.mjs';
import { benchArgs, headerHelp } from './lib/bench-cli.mjs';
import { benchDialects, cleanupOnExit } from './lib/cleanups.mjs';
import { freshPgSchema } from './lib/pg-schema.mjs';
import { runBench, table, warnIfBusy } from './lib/report.mjs';

const AIM_MS = 100;
const CHUNK = 1000;
const HARDWARE = ['rpi4', 'rpi5', 'imx8', 'x86-gw'];
const VERSIONS = ['1.0.0', '1.1.0', '1.2.0', '2.0.0', '2.1.0', '2.2.0'];
const DAY_MS = 86_400_000;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => process.stderr.write(`[bench] ${message}\n`);

// The comment at the top of this file is the help.
benchArgs(log, headerHelp(import.meta.url));
const nodeCount = Number(process.env.BENCH_NODES ?? 100_000);
const scrapes = Number(process.env.BENCH_SCRAPES ?? 15);
if (!Number.isInteger(nodeCount) || nodeCount < 1000) {
  log(`BENCH_NODES must be an integer >= 1000, not ${JSON.stringify(process.env.BENCH_NODES)}`);
  process.exit(2);
}
if (!Number.isInteger(scrapes) || scrapes < 1) {
  log(`BENCH_SCRAPES must be a positive integer, not ${JSON.stringify(process.env.BENCH_SCRAPES)}`);
  process.exit(2);
}
const dialects = benchDialects(log);
const group = new ProcessGroup({ graceMs: 10_000 });
const { cleanups, cleanup } = cleanupOnExit(log);

function built(...parts) {
  const file = join(root, 'dist', ...parts);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`make bench\`, which builds first`);
  return import(pathToFileURL(file).href);
}

const profiling = process.env.BENCH_PROFILE === '1';
const [configLib, dbLib, metricsLib, { createApi }] = await Promise.all([
  built('libs', 'config', 'src', 'index.js'),
  built('libs', 'db', 'src', 'index.js'),
  built('libs', 'metrics', 'src', 'index.js'),
  built('apps', 'api', 'src', 'create-api.js'),
]);

// --- Rows.

const chunked = (items) =>
  Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK));

async function insertRows(db, tableName, rows) {
  for (const part of chunked(rows)) await db.insertInto(tableName).values(part).execute();
}

const iso = (ms) => new Date(ms).toISOString();
const pick = (list, i) => list[i % list.length];

async function seed(db, t0) {
  const now = iso(t0);
  const ids = Array.from({ length: nodeCount }, () => randomUUID());
  const hardwareOf = (i) => pick(HARDWARE, i);
  const nodes = ids.map((id, i) =>
    dbLib.testNodeRow({
      id,
      hardwareId: hardwareOf(i),
      runningVersion: pick(VERSIONS, Math.floor(i / HARDWARE.length)),
      state: i % 50 === 0 ? 'revoked' : i % 25 === 0 ? 'pending-approval' : 'active',
      createdAt: now,
    }),
  );
  const verdicts = [];
  ids.forEach((nodeId, i) => {
    const share = i % 100;
    if (share < 2) return; // never attested
    const verdict = (passed, at) => ({
      id: randomUUID(),
      node_id: nodeId,
      passed: passed ? 1 : 0,
      reason: passed ? 'quote verified, PCRs match' : 'PCR 9 does not match the release measurements',
      pcr_values: '{}',
      release_version: null,
      created_at: iso(at),
    });
    verdicts.push(verdict(true, t0 - 3 * DAY_MS - i));
    if (share < 6) return; // stale: only the old one
    verdicts.push(verdict(share >= 10, t0 - 60_000 - (i % 3_600_000)));
  });
  const body = JSON.stringify({ signed: { pad: randomBytes(270).toString('hex') } });
  const DIRECTOR_ROLES = ['targets', 'snapshot', 'timestamp'];
  const expiry = (role, i) => iso(t0 + (role === 'timestamp' ? DAY_MS : 7 * DAY_MS) + i * 1000);
  const director = ids.flatMap((nodeId, i) =>
    DIRECTOR_ROLES.map((role) => ({
      repository: `director/${nodeId}`,
      role,
      version: 1 + (i % 7),
      expires_at: expiry(role, i),
      body,
      created_at: now,
    })),
  );
  // Each node's assignment row with the expiry of its newest version of each role, as the director's commit
  // writes them next to the metadata (what the director expiry gauge reads).
  const assignments = ids.map((nodeId, i) => ({
    node_id: nodeId,
    hardware_id: hardwareOf(i),
    generation: 0,
    metadata_generation: 0,
    updated_at: now,
    ...Object.fromEntries(DIRECTOR_ROLES.map((role) => [`${role}_expires_at`, expiry(role, i)])),
  }));
  const downloads = ids.map((nodeId, i) => ({
    id: randomUUID(),
    node_id: nodeId,
    hardware_id: hardwareOf(i),
    version: '2.2.0',
    method: i % 3 === 0 ? 'full' : 'delta',
    bytes_downloaded: i % 3 === 0 ? 100_000_000 : 20_000_000,
    full_bytes: 100_000_000,
    created_at: now,
  }));
  const release = {
    id: randomUUID(),
    hardware_id: HARDWARE[0],
    version: '2.2.0',
    target_path: `images/${HARDWARE[0]}/2.2.0`,
    sha256: randomBytes(32).toString('hex'),
    length: 100_000_000,
    blob_key: 'bench/release',
    measurements: '{}',
    notes: '',
    created_at: now,
    created_by: 'bench',
  };
  const rollout = (state) => ({
    id: randomUUID(),
    name: `bench-${state}`,
    release_id: release.id,
    hardware_id: HARDWARE[0],
    selector: '{}',
    waves: JSON.stringify([
      { percent: 1, soakSeconds: 600 },
      { percent: 10, soakSeconds: 600 },
      { percent: 100, soakSeconds: 600 },
    ]),
    success_threshold: 0.9,
    failure_threshold: 0.3,
    max_attestation_age_seconds: 3600,
    maintenance_window: null,
    max_concurrent: null,
    node_deadline_seconds: 86_400,
    state,
    state_reason: null,
    current_wave: 1,
    wave_started_at: now,
    revision: 1,
    created_by: 'bench',
    created_at: now,
    started_at: now,
    finished_at: null,
    updated_at: now,
  });
  const running = rollout('running');
  const paused = rollout('paused');
  const members = ids.filter((_, i) => hardwareOf(i) === HARDWARE[0]);
  const WAVE_STATES = [
    ['succeeded', 'failed', 'quarantined'],
    ['assigned', 'downloading', 'installed', 'committed', 'succeeded', 'waiting-attestation'],
    ['pending'],
  ];
  const rolloutNodes = members.map((nodeId, i) => {
    const wave = i < members.length * 0.01 ? 0 : i < members.length * 0.11 ? 1 : 2;
    return {
      rollout_id: running.id,
      node_id: nodeId,
      wave,
      state: pick(WAVE_STATES[wave], i),
      reason: null,
      from_version: '2.1.0',
      admitted_at: wave < 2 ? now : null,
      finished_at: null,
      updated_at: now,
    };
  });
  const deltaBuilds = VERSIONS.slice(0, 5).flatMap((from, i) =>
    HARDWARE.map((hw) => ({
      id: randomUUID(),
      hardware_id: hw,
      from_version: from,
      to_version: '2.2.0',
      from_sha256: randomBytes(32).toString('hex'),
      to_sha256: randomBytes(32).toString('hex'),
      from_length: 100_000_000,
      to_length: 100_000_000,
      target_path: `deltas/${hw}/${from}-2.2.0`,
      state: i === 4 ? 'failed' : 'published',
      progress: 100,
      patch_length: i === 4 ? null : 20_000_000,
      patch_sha256: null,
      blob_key: null,
      build_seconds: 60,
      peak_rss_bytes: null,
      error: null,
      created_at: now,
      updated_at: now,
    })),
  );
  await db.transaction().execute(async (trx) => {
    await insertRows(trx, 'nodes', nodes);
    await insertRows(trx, 'attestation_verdicts', verdicts);
    await insertRows(trx, 'tuf_metadata', director);
    await insertRows(trx, 'director_assignments', assignments);
    await insertRows(trx, 'downloads', downloads);
    await insertRows(trx, 'releases', [release]);
    await insertRows(trx, 'rollouts', [running, paused]);
    await insertRows(trx, 'rollout_nodes', rolloutNodes);
    await insertRows(trx, 'delta_builds', deltaBuilds);
  });
  return { verdicts: verdicts.length, director: director.length, rolloutNodes: rolloutNodes.length };
}

// --- Measurement.

const sorted = (values) => [...values].sort((a, b) => a - b);
const median = (values) => sorted(values)[Math.floor(values.length / 2)];
const quantile = (values, q) => sorted(values)[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)];

async function scrape(url) {
  const started = performance.now();
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${text.slice(0, 200)}`);
  return { ms, text };
}

/** The scrape must show the whole fleet: otherwise the bench would time a collector that failed. */
function checkFleet(text) {
  let nodes = 0;
  for (const [, value] of text.matchAll(/^otter_nodes\{[^}]*\} (\d+)$/gm)) nodes += Number(value);
  if (nodes !== nodeCount) throw new Error(`otter_nodes sums to ${nodes}, not ${nodeCount}`);
  for (const family of [
    'otter_rollout_wave_nodes{',
    'otter_queue_jobs{',
    'tuf_role_expiry_seconds{repository="director"',
  ])
    if (!text.includes(family)) throw new Error(`the scrape lacks ${family}`);
}

/** Each family's own collection time (a gauge's collect runs its aggregate), median of 3, slowest first. */
async function profileFamilies(dialect, metrics) {
  const rows = [];
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const times = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await metric.get();
      times.push(performance.now() - started);
    }
    rows.push([metric.name, median(times)]);
  }
  rows.sort((a, b) => b[1] - a[1]);
  log(
    `${dialect}: collection per family (ms): ${rows
      .slice(0, 8)
      .map(([n, ms]) => `${n} ${ms.toFixed(1)}`)
      .join(', ')}`,
  );
}

async function runDialect(dialect, redisUrl) {
  const local = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-bench-metrics-'));
  local.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = {
    OTTER_ENV: 'development',
    OTTER_DATA_DIR: dataDir,
    OTTER_LOG_LEVEL: 'error',
    OTTER_PORT: '0',
    REDIS_URL: redisUrl,
    OTTER_QUEUE_PREFIX: `bench${randomBytes(5).toString('hex')}`,
  };
  let where;
  if (dialect === 'postgres') {
    const fresh = await freshPgSchema(local);
    env.DATABASE_URL = fresh.url;
    where = fresh.where;
  } else {
    env.DATABASE_URL = `sqlite:${join(dataDir, 'otter.sqlite')}`;
    where = `SQLite (WAL) file in ${dataDir}`;
  }
  const dropLocal = async () => {
    for (const fn of local.splice(0).reverse()) await fn();
  };
  cleanups.push(dropLocal);
  try {
    const app = await createApi(configLib.loadConfig(env));
    local.push(() => app.close());
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${app.getHttpServer().address().port}`;
    const db = app.get(dbLib.DB);
    const empty = await scrape(url);
    const seeding = performance.now();
    const counts = await seed(db, Date.now());
    // PostgreSQL plans from statistics, and an index-only scan skips the heap only for pages its visibility
    // map marks all-visible: vacuum and analyze, as autovacuum does after a bulk insert.
    if (dialect === 'postgres') await sql`vacuum analyze`.execute(db);
    log(
      `${dialect}: ${nodeCount} nodes, ${counts.verdicts} verdicts, ${counts.director} director metadata rows, ` +
        `${counts.rolloutNodes} rollout nodes in ${(performance.now() - seeding).toFixed(0)} ms (${where})`,
    );
    const warm = await scrape(url); // warm-up
    if (profiling) await profileFamilies(dialect, app.get(metricsLib.OtterMetrics));
    checkFleet(warm.text); // every collector answered
    const times = [];
    let bytes = 0;
    for (let i = 0; i < scrapes; i++) {
      const { ms, text } = await scrape(url);
      times.push(ms);
      bytes = text.length;
    }
    const counting = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await sql`select count(*) as n from nodes`.execute(db);
      counting.push(performance.now() - started);
    }
    return {
      dialect,
      medianMs: median(times),
      p90Ms: quantile(times, 0.9),
      maxMs: Math.max(...times),
      emptyMs: empty.ms,
      countMs: median(counting),
      bytes,
    };
  } finally {
    cleanups.splice(cleanups.indexOf(dropLocal), 1);
    await dropLocal();
  }
}

async function main() {
  warnIfBusy(log, 'the times');
  const redisUrl =
    process.env.REDIS_URL ?? process.env.OTTER_TEST_REDIS_URL ?? (await ensureRedis(group, process.env));
  cleanups.push(() => group.stop());
  const results = [];
  for (const dialect of dialects) results.push(await runDialect(dialect, redisUrl));
  const rows = [
    ['dialect', 'median ms', 'p90 ms', 'max ms', 'vs aim', 'empty fleet ms', 'count(*) ms', 'KiB'],
  ];
  for (const r of results) {
    rows.push([
      r.dialect,
      r.medianMs.toFixed(1),
      r.p90Ms.toFixed(1),
      r.maxMs.toFixed(1),
      `${(r.medianMs / AIM_MS).toFixed(2)}x`,
      r.emptyMs.toFixed(1),
      r.countMs.toFixed(1),
      (r.bytes / 1024).toFixed(0),
    ]);
  }
  console.log(
    `GET /metrics with ${nodeCount} nodes, ${scrapes} scrapes after a warm-up (aim: median < ${AIM_MS} ms)`,
  );
  for (const line of table(rows)) console.log(line);
  for (const r of results)
    console.log(
      `${r.dialect}: ${r.medianMs < AIM_MS ? 'meets' : 'MISSES'} the ${AIM_MS} ms aim (median ${r.medianMs.toFixed(1)} ms)`,
    );
}

await runBench(main, log, cleanup);
