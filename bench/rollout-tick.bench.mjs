#!/usr/bin/env node
// `make bench`: how long one scheduler tick takes for a rollout over 100,000 nodes, on SQLite and on
// PostgreSQL. The aim: every tick under 2 s on both.
//
// No agent runs. The built libs are booted in a Nest application context holding what RolloutTicker needs
// (the scheduler's modules without its BullMQ worker and repeatable job, so no tick runs but the ones
// measured here). Nodes, two releases and one attestation verdict per node are written as rows, in
// multi-row inserts; the releases are also signed into the image repository with a PCR 9 reference
// measurement (their images are not stored), since a rollout refuses a release without one. The rollout is created and started through RolloutService, with waves of 1%, 10% and
// the rest; then in each wave 93% of the verdicts pass and are fresh, 5% are too old (the node is asked to
// attest again) and 2% failed (the node is quarantined). The ticks are driven by hand at chosen clock times:
//
//   1. wave 1 admitted (~1,000 nodes: a director assignment each, the stale asked to attest, the failed
//      quarantined)
//   2. nothing to do (median of 3)
//   3. wave 1's committed nodes proven by a passing attestation of the new release (rows written directly)
//   4. wave 1's soak over: wave 2 starts and ~10,000 nodes are admitted
//   5. 5,000 of wave 2 committed and proven
//
// Baselines from the same run and database: one SELECT count(*) over rollout_nodes, and one bulk insert of as
// many rows as rollout_nodes holds (director_assignments-shaped rows into a scratch table, 1,000 per
// statement, one transaction).
//
//   node bench/rollout-tick.bench.mjs
//     BENCH_NODES       simulated nodes (default 100000)
//     BENCH_DIALECTS    sqlite,postgres (default both)
//     BENCH_PROFILE=1   also time every SQL statement of each tick, grouped by statement (adds overhead)
//     BENCH_BUILD_DIR   directory whose dist/ holds the built libs, next to a package.json with the
//                       #otter/* imports and node_modules (default: this repository)
//     OTTER_TEST_DATABASE_URL  PostgreSQL server; a fresh schema is created there and dropped afterwards
//                       (default postgres://postgres@127.0.0.1:5432/test, as scripts/test-services.sh)
//     REDIS_URL, OTTER_TEST_REDIS_URL  Redis for the queue RolloutService asks for a tick on (default: a
//                       local one, started if none answers)
//
// Exits non-zero only when something failed to run (a tick that did not do what the scenario needs), never
// because of a time.
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getQueueToken } from '@nestjs/bullmq';
import { NestFactory } from '@nestjs/core';
import { sql } from 'kysely';
import { ProcessGroup, ensureRedis } from '../scripts/lib/processes.mjs';
import { benchArgs, headerHelp } from './lib/bench-cli.mjs';
import { benchDialects, cleanupOnExit } from './lib/cleanups.mjs';
import { freshPgSchema } from './lib/pg-schema.mjs';
import { runBench, table, warnIfBusy } from './lib/report.mjs';

const AIM_MS = 2000;
const CHUNK = 1000;
const HW = 'bench-board';
const FROM = '1.0.0';
const TO = '2.0.0';
const WAVE_SOAK_SECONDS = 600;
const MAX_ATTESTATION_AGE_SECONDS = 3600;
const STALE_SECONDS = 2 * 86_400;
const PROVEN_IN_WAVE_2 = 5000;
const STEADY_REPEATS = 3;
const BASELINE_REPEATS = 5;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => process.stderr.write(`[bench] ${message}\n`);

// The comment at the top of this file is the help.
benchArgs(log, headerHelp(import.meta.url));
const nodeCount = Number(process.env.BENCH_NODES ?? 100_000);
if (!Number.isInteger(nodeCount) || nodeCount < 1000) {
  log(`BENCH_NODES must be an integer >= 1000, not ${JSON.stringify(process.env.BENCH_NODES)}`);
  process.exit(2);
}
const dialects = benchDialects(log);
const profiling = process.env.BENCH_PROFILE === '1';
const buildDir = resolve(process.env.BENCH_BUILD_DIR ?? root);

const group = new ProcessGroup({ graceMs: 10_000 });
const { cleanups, cleanup } = cleanupOnExit(log);

/** A lib of the build, which must exist. */
async function builtLib(name) {
  const file = join(buildDir, 'dist', 'libs', name, 'src', 'index.js');
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`make bench\`, which builds first`);
  return import(pathToFileURL(file).href);
}

const [configLib, dbLib, storageLib, queueLib, rolloutsLib, directorLib, tufLib] = await Promise.all(
  ['config', 'db', 'storage', 'queue', 'rollouts', 'director', 'tuf'].map(builtLib),
);

/** The events lib, which builds before issue 10 do not have (their rollouts publish nothing). */
async function optionalLib(name) {
  const file = join(buildDir, 'dist', 'libs', name, 'src', 'index.js');
  return existsSync(file) ? import(pathToFileURL(file).href) : undefined;
}
const eventsLib = await optionalLib('events');

/** The scheduler's modules (apps/scheduler/src/scheduler.module.ts) without its processors and schedules. */
class RolloutTickBenchModule {}

async function startContext(config) {
  const app = await NestFactory.createApplicationContext(
    {
      module: RolloutTickBenchModule,
      imports: [
        configLib.ConfigModule.forRoot(config),
        dbLib.DbModule,
        ...(eventsLib ? [eventsLib.EventsModule] : []),
        storageLib.StorageModule,
        queueLib.QueueModule.forRoot(config, queueLib.QUEUES.rollouts),
        rolloutsLib.RolloutsModule.register({
          imports: [directorLib.DirectorAssignmentsModule],
          assignments: directorLib.DirectorAssignmentRepository,
        }),
      ],
    },
    { logger: ['error', 'fatal'], abortOnError: false },
  );
  await app.init();
  return app;
}

// --- Rows.

const chunked = (items) =>
  Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK));

async function insertRows(db, table, rows) {
  for (const part of chunked(rows)) await db.insertInto(table).values(part).execute();
}

/** Shares of each wave whose latest verdict failed (fresh) or passed but is too old to admit on. */
const FAILED_SHARE = 0.02;
const STALE_SHARE = 0.05;

async function seed(app, db, t0) {
  const iso = (ms) => new Date(ms).toISOString();
  const now = iso(t0);
  const releases = [FROM, TO].map((version) => {
    const id = randomUUID();
    return {
      id,
      hardware_id: HW,
      version,
      target_path: `images/${HW}/${version}`,
      sha256: randomBytes(32).toString('hex'),
      length: 100_000_000,
      blob_key: `bench/${id}`,
      measurements: JSON.stringify({ 9: randomBytes(32).toString('hex') }),
      notes: '',
      created_at: now,
      created_by: 'bench',
    };
  });
  await app.get(tufLib.ImageRepositoryInitializer, { strict: false }).initialize();
  await app.get(tufLib.IMAGE_REPOSITORY, { strict: false }).addTargets(
    releases.map((r) => ({
      path: r.target_path,
      length: r.length,
      sha256: r.sha256,
      blobKey: r.blob_key,
      custom: { hardware: HW, version: r.version, measurements: JSON.parse(r.measurements) },
    })),
  );
  const ids = Array.from({ length: nodeCount }, () => randomUUID());
  const nodes = ids.map((id) =>
    dbLib.testNodeRow({ id, hardwareId: HW, runningVersion: FROM, createdAt: now }),
  );
  // All passed and fresh here; shapeVerdicts fails and ages some once the waves are known.
  const verdicts = ids.map((nodeId) => ({
    id: randomUUID(),
    node_id: nodeId,
    passed: 1,
    reason: 'quote verified, PCRs match',
    pcr_values: '{}',
    release_version: FROM,
    created_at: iso(t0 - Math.floor(Math.random() * 300) * 1000),
  }));
  await db.transaction().execute(async (trx) => {
    await insertRows(trx, 'releases', releases);
    await insertRows(trx, 'nodes', nodes);
    await insertRows(trx, 'attestation_verdicts', verdicts);
  });
}

/**
 * Makes exactly FAILED_SHARE of each wave's nodes (rounded) have a failed latest verdict and STALE_SHARE one
 * too old to admit on. Per wave rather than per fleet: a small wave (BENCH_NODES=2000 gives a first wave of 20)
 * drawn from fleet-wide shares could miss the success threshold by chance, and the bench then stopped.
 */
async function shapeVerdicts(db, rolloutId, t0) {
  const rows = await db
    .selectFrom('rollout_nodes')
    .select(['node_id', 'wave'])
    .where('rollout_id', '=', rolloutId)
    .orderBy('node_id')
    .execute();
  const waves = new Map();
  for (const { node_id: id, wave } of rows) {
    if (!waves.has(wave)) waves.set(wave, []);
    waves.get(wave).push(id);
  }
  const failed = [];
  const stale = [];
  for (const ids of waves.values()) {
    const f = Math.round(ids.length * FAILED_SHARE);
    failed.push(...ids.slice(0, f));
    stale.push(...ids.slice(f, f + Math.round(ids.length * STALE_SHARE)));
  }
  await db.transaction().execute(async (trx) => {
    const update = async (nodeIds, values) => {
      for (const part of chunked(nodeIds)) {
        await trx.updateTable('attestation_verdicts').set(values).where('node_id', 'in', part).execute();
      }
    };
    await update(failed, { passed: 0, reason: 'PCR 9 does not match the release measurements' });
    await update(stale, { created_at: new Date(t0 - STALE_SECONDS * 1000).toISOString() });
  });
}

/**
 * What agents and the api would have done meanwhile: the nodes reported `committed`, then attested with the
 * new release's measurements at `attestedAt` (after their admission).
 */
async function commitAndProve(db, rolloutId, nodeIds, attestedAt) {
  const at = attestedAt.toISOString();
  await db.transaction().execute(async (trx) => {
    for (const part of chunked(nodeIds)) {
      await trx
        .updateTable('rollout_nodes')
        .set({ state: 'committed', updated_at: at })
        .where('rollout_id', '=', rolloutId)
        .where('node_id', 'in', part)
        .execute();
    }
    await insertRows(
      trx,
      'attestation_verdicts',
      nodeIds.map((nodeId) => ({
        id: randomUUID(),
        node_id: nodeId,
        passed: 1,
        reason: 'quote verified, PCRs match',
        pcr_values: '{}',
        release_version: TO,
        release_proven: 1,
        created_at: at,
      })),
    );
  });
}

async function nodeIdsIn(db, rolloutId, wave, state, limit) {
  let query = db
    .selectFrom('rollout_nodes')
    .select('node_id')
    .where('rollout_id', '=', rolloutId)
    .where('wave', '=', wave)
    .where('state', '=', state)
    .orderBy('node_id');
  if (limit !== undefined) query = query.limit(limit);
  return (await query.execute()).map((r) => r.node_id);
}

// --- Statement profile (BENCH_PROFILE=1): every query Kysely runs, timed at its executor.

/** @type {Map<string, { count: number, ms: number }> | undefined} */
let profile;

function installProfiler(db) {
  // Every executor (the database's and each transaction's) is a DefaultQueryExecutor whose executeQuery
  // comes from QueryExecutorBase, which Kysely does not export: reach it through this database's executor.
  const base = Object.getPrototypeOf(Object.getPrototypeOf(db.getExecutor()));
  const original = base.executeQuery;
  if (typeof original !== 'function') throw new Error('BENCH_PROFILE: Kysely executor not found');
  base.executeQuery = async function (compiled, options) {
    if (!profile) return original.call(this, compiled, options);
    const started = performance.now();
    try {
      return await original.call(this, compiled, options);
    } finally {
      const key = statementKey(compiled.sql);
      const entry = profile.get(key) ?? { count: 0, ms: 0 };
      entry.count += 1;
      entry.ms += performance.now() - started;
      profile.set(key, entry);
    }
  };
  return () => {
    base.executeQuery = original;
  };
}

function statementKey(text) {
  const short = text
    .replaceAll('"', '')
    .replace(/\s+/g, ' ')
    .replace(/(\$\d+|\?)(, (\$\d+|\?))+/g, '…')
    .replace(/\((…|\$\d+|\?)\)(, \((…|\$\d+|\?)\))+/g, '(…), …');
  return short.length > 110 ? `${short.slice(0, 107)}...` : short;
}

// --- Measurement.

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function timed(fn) {
  const started = performance.now();
  const result = await fn();
  return { ms: performance.now() - started, result };
}

async function tick(ticker, rolloutId, at, label) {
  if (profiling) profile = new Map();
  const { ms, result } = await timed(() => ticker.tickRollout(rolloutId, at));
  const statements = profile;
  profile = undefined;
  if (result.skipped) throw new Error(`${label}: tick skipped (${result.skipped})`);
  log(
    `${label}: ${ms.toFixed(0)} ms (admitted ${result.admitted}, asked to attest ${result.askedToAttest},` +
      ` quarantined ${result.quarantined}, succeeded ${result.succeeded}, wave ${result.wave + 1})`,
  );
  return { label, ms, report: result, statements };
}

async function baselines(db) {
  const count = [];
  let rows = 0;
  for (let i = 0; i < BASELINE_REPEATS; i++) {
    const { ms, result } = await timed(() =>
      sql`select count(*) as n from rollout_nodes`.execute(db).then((r) => Number(r.rows[0].n)),
    );
    count.push(ms);
    rows = result;
  }
  await db.schema
    .createTable('bench_baseline')
    .addColumn('node_id', 'text', (c) => c.primaryKey())
    .addColumn('hardware_id', 'text', (c) => c.notNull())
    .addColumn('release_id', 'text')
    .addColumn('target_path', 'text')
    .addColumn('version', 'text')
    .addColumn('sha256', 'text')
    .addColumn('length', 'bigint')
    .addColumn('rollout_id', 'text')
    .addColumn('generation', 'integer', (c) => c.notNull())
    .addColumn('metadata_generation', 'integer')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  try {
    const now = new Date().toISOString();
    const sha256 = randomBytes(32).toString('hex');
    const values = Array.from({ length: rows }, () => ({
      node_id: randomUUID(),
      hardware_id: HW,
      release_id: randomUUID(),
      target_path: `images/${HW}/${TO}`,
      version: TO,
      sha256,
      length: 100_000_000,
      rollout_id: randomUUID(),
      generation: 1,
      metadata_generation: null,
      updated_at: now,
    }));
    const insert = await timed(() =>
      db.transaction().execute((trx) => insertRows(trx, 'bench_baseline', values)),
    );
    return { countMs: median(count), rows, insertMs: insert.ms };
  } finally {
    await db.schema.dropTable('bench_baseline').execute();
  }
}

/** One dialect, start to finish: its own data dir (and schema), context, fleet and rollout. */
async function runDialect(dialect, redisUrl) {
  const local = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-bench-rollout-'));
  local.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = {
    OTTER_ENV: 'development',
    OTTER_DATA_DIR: dataDir,
    OTTER_LOG_LEVEL: 'error',
    REDIS_URL: redisUrl,
    // Its own BullMQ keys, whatever else uses this Redis; obliterated at the end.
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
    return await measureDialect(dialect, where, env, local);
  } finally {
    // Each dialect's rows go as soon as it is measured: the next one runs on a quiet machine.
    cleanups.splice(cleanups.indexOf(dropLocal), 1);
    await dropLocal();
  }
}

async function measureDialect(dialect, where, env, local) {
  const app = await startContext(configLib.loadConfig(env));
  local.push(async () => {
    const queue = app.get(getQueueToken(queueLib.QUEUES.rollouts), { strict: false });
    await queue.obliterate({ force: true });
    await app.close();
  });
  const db = app.get(dbLib.DB);
  const service = app.get(rolloutsLib.RolloutService);
  const ticker = app.get(rolloutsLib.RolloutTicker);
  const unprofile = profiling ? installProfiler(db) : undefined;
  if (unprofile) local.push(unprofile);

  const t0 = Date.now();
  const seeding = await timed(() => seed(app, db, t0));
  log(`${dialect}: ${nodeCount} nodes, 2 releases, ${nodeCount} verdicts in ${seeding.ms.toFixed(0)} ms`);

  const created = await service.create(
    {
      name: 'bench',
      hardwareId: HW,
      version: TO,
      selector: {},
      waves: [
        { percent: 1, soakSeconds: WAVE_SOAK_SECONDS },
        { percent: 10, soakSeconds: WAVE_SOAK_SECONDS },
        { percent: 100, soakSeconds: WAVE_SOAK_SECONDS },
      ],
      successThreshold: 0.9,
      failureThreshold: 0.3,
      maxAttestationAgeSeconds: MAX_ATTESTATION_AGE_SECONDS,
    },
    'bench',
  );
  const starting = await timed(() => service.start(created.id));
  await shapeVerdicts(db, created.id, t0);
  const started = starting.result;
  // Ticks run at simulated times from the moment the rollout started, so soaks can end without waiting.
  const startedAt = Date.parse(started.startedAt);
  const tickAt = (seconds) => new Date(startedAt + seconds * 1000);
  log(
    `${dialect}: rollout started in ${starting.ms.toFixed(0)} ms, waves ${started.progress.map((p) => p.size).join(' / ')}`,
  );

  const ticks = [];
  const first = await tick(ticker, created.id, tickAt(1), 'wave 1 admitted');
  ticks.push(first);
  if (first.report.admitted === 0) throw new Error('the first tick admitted nobody');

  const steady = [];
  for (let i = 0; i < STEADY_REPEATS; i++) {
    steady.push(await tick(ticker, created.id, tickAt(2 + i), `nothing to do (${i + 1}/${STEADY_REPEATS})`));
  }
  for (const s of steady) {
    const r = s.report;
    if (r.admitted + r.askedToAttest + r.quarantined + r.succeeded + r.timedOut > 0)
      throw new Error(`a steady tick changed something: ${JSON.stringify(r)}`);
  }
  const steadyMedian = [...steady].sort((a, b) => a.ms - b.ms)[Math.floor(steady.length / 2)];
  ticks.push({ ...steadyMedian, label: `nothing to do (median of ${STEADY_REPEATS})` });

  const wave1 = await nodeIdsIn(db, created.id, 0, 'assigned');
  await commitAndProve(db, created.id, wave1, tickAt(30));
  const proven1 = await tick(ticker, created.id, tickAt(60), `wave 1 proven (${wave1.length})`);
  if (proven1.report.succeeded !== wave1.length)
    throw new Error(`proved ${proven1.report.succeeded} of ${wave1.length} committed nodes`);
  ticks.push(proven1);

  const second = await tick(ticker, created.id, tickAt(WAVE_SOAK_SECONDS + 1), 'wave 2 starts, admitted');
  if (second.report.wave !== 1 || second.report.admitted === 0)
    throw new Error(`wave 2 did not start: ${JSON.stringify(second.report)}`);
  ticks.push(second);

  const wave2 = await nodeIdsIn(db, created.id, 1, 'assigned', PROVEN_IN_WAVE_2);
  await commitAndProve(db, created.id, wave2, tickAt(WAVE_SOAK_SECONDS + 30));
  const proven2 = await tick(
    ticker,
    created.id,
    tickAt(WAVE_SOAK_SECONDS + 60),
    `wave 2 proven (${wave2.length})`,
  );
  if (proven2.report.succeeded !== wave2.length)
    throw new Error(`proved ${proven2.report.succeeded} of ${wave2.length} committed nodes`);
  ticks.push(proven2);

  if (unprofile) {
    unprofile();
    local.splice(local.indexOf(unprofile), 1);
  }
  const base = await baselines(db);
  log(
    `${dialect}: count(*) ${base.countMs.toFixed(2)} ms; bulk insert of ${base.rows} rows ${base.insertMs.toFixed(0)} ms`,
  );
  return {
    dialect,
    where,
    seedMs: seeding.ms,
    startMs: starting.ms,
    waves: started.progress.map((p) => p.size),
    ticks,
    base,
  };
}

// --- Report.

function printDialect(r) {
  const int = (n) => Math.round(n).toLocaleString('en-US');
  const fixed = (n, d = 1) => n.toFixed(d);
  const rows = [
    [
      'tick',
      'ms',
      'admitted',
      'asked to attest',
      'quarantined',
      'succeeded',
      `x count(*)`,
      `x insert ${int(r.base.rows)}`,
    ],
    ...r.ticks.map((t) => [
      t.label,
      int(t.ms),
      int(t.report.admitted),
      int(t.report.askedToAttest),
      int(t.report.quarantined),
      int(t.report.succeeded),
      fixed(t.ms / r.base.countMs, 0),
      fixed(t.ms / r.base.insertMs, 2),
    ]),
  ];
  const slowest = r.ticks.reduce((a, b) => (b.ms > a.ms ? b : a));
  const out = [
    '',
    `${r.dialect}: ${r.where}`,
    `${int(nodeCount)} active nodes (waves ${r.waves.map(int).join(' / ')}); latest verdicts 93% passed and fresh,` +
      ` 5% older than ${MAX_ATTESTATION_AGE_SECONDS} s, 2% failed. Seeded in ${int(r.seedMs)} ms; rollout` +
      ` started (RolloutService.start) in ${int(r.startMs)} ms.`,
    '',
    ...table(rows),
    '',
    `Baselines: SELECT count(*) over rollout_nodes (${int(r.base.rows)} rows) ${fixed(r.base.countMs, 2)} ms` +
      ` (median of ${BASELINE_REPEATS}); one bulk insert of ${int(r.base.rows)} rows (${CHUNK} per statement,` +
      ` one transaction) ${int(r.base.insertMs)} ms.`,
    `Aim: every tick < ${AIM_MS} ms on ${r.dialect}: ${slowest.ms < AIM_MS ? 'met' : 'NOT met'}` +
      ` (slowest: ${slowest.label}, ${int(slowest.ms)} ms = ${fixed(slowest.ms / AIM_MS, 2)} x the aim).`,
  ];
  if (profiling) {
    for (const t of r.ticks) {
      if (!t.statements) continue;
      const entries = [...t.statements].sort((a, b) => b[1].ms - a[1].ms);
      const total = entries.reduce((sum, [, e]) => sum + e.ms, 0);
      const count = entries.reduce((sum, [, e]) => sum + e.count, 0);
      out.push(
        '',
        `Profile of "${t.label}": ${int(count)} statements, ${int(total)} ms waiting on them of ${int(t.ms)} ms` +
          ` (the rest: JavaScript between statements)`,
        ...table([
          ['statement', 'count', 'ms', 'ms each'],
          ...entries.slice(0, 8).map(([key, e]) => [key, int(e.count), int(e.ms), fixed(e.ms / e.count, 3)]),
        ]).map((l) => `  ${l}`),
      );
    }
  }
  out.push('');
  process.stdout.write(out.join('\n'));
}

async function main() {
  warnIfBusy(log, 'the times');
  const redisUrl = await ensureRedis(group, {
    REDIS_URL: process.env.REDIS_URL ?? process.env.OTTER_TEST_REDIS_URL,
  });
  cleanups.push(() => group.stop());
  const results = [];
  for (const dialect of dialects) {
    results.push(await runDialect(dialect, redisUrl));
  }
  process.stdout.write(
    `\nRollout tick over ${nodeCount.toLocaleString('en-US')} simulated nodes` +
      ` (RolloutTicker.tickRollout, one transaction per tick; times are wall-clock on` +
      ` ${availableParallelism()} cores${profiling ? ', statement profiling on: times include its overhead' : ''})\n`,
  );
  for (const r of results) printDialect(r);
  process.stdout.write(
    '\n' +
      results
        .map((r) => {
          const slowest = Math.max(...r.ticks.map((t) => t.ms));
          return `${r.dialect}: slowest tick ${Math.round(slowest)} ms, aim < ${AIM_MS} ms ${slowest < AIM_MS ? 'met' : 'NOT met'}`;
        })
        .join('\n') +
      '\n',
  );
}

await runBench(main, log, cleanup);
