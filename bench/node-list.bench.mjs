#!/usr/bin/env node
// `make bench`: how long the built api takes to answer one page of `GET /api/v1/nodes` with 100,000 nodes,
// on SQLite and on PostgreSQL. The aim: under 100 ms each.
//
// The built api runs as its own process (it migrates its database); the nodes are then written as rows in
// multi-row inserts: 4 hardware ids, 4 running versions, mostly active, a site label out of 50 each (in
// node_labels too), a last-seen time within the last 3 days (5% never seen), and a last verdict kept on the
// row: 90% passed recently, 5% passed days ago (stale), 3% failed, 2% never attested. Each query below is
// sent BENCH_REPEATS times (after 3 warm-up requests) with the bootstrap admin token, one at a time; the
// client-side time of the whole HTTP exchange (JSON parsed) is reported as median and p95:
//
//   default page          no filter, the server's default page size (100)
//   deep cursor           the page after the 99,900th node (the cursor built from that node's row)
//   hardware+state+ver    hardware, state and running version together
//   label                 one site label (~2% of the fleet)
//   attestation=failed    the 3% whose last verdict failed
//   notSeenFor=1d         last seen over a day ago or never
//   page of 1000          the largest page the api gives
//
//   node bench/node-list.bench.mjs
//     BENCH_NODES       nodes (default 100000)
//     BENCH_REPEATS     requests per query (default 30)
//     BENCH_DIALECTS    sqlite,postgres (default both)
//     BENCH_BUILD_DIR   directory whose dist/ holds the built api and libs (default: this repository)
//     OTTER_TEST_DATABASE_URL  PostgreSQL server; a fresh schema is created there and dropped afterwards
//                       (default postgres://postgres@127.0.0.1:5432/test, as scripts/test-services.sh)
//     REDIS_URL, OTTER_TEST_REDIS_URL  Redis for the api (default: a local one, started if none answers)
//
// Exits non-zero only when something failed to run (a page that did not answer 200 with nodes), never
// because of a time.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ProcessGroup, ensureRedis, freePort, waitForHttp } from '../scripts/lib/processes.mjs';
import { benchArgs, headerHelp } from './lib/bench-cli.mjs';
import { benchDialects, cleanupOnExit } from './lib/cleanups.mjs';
import { freshPgSchema, pgQuery } from './lib/pg-schema.mjs';
import { runBench, table, warnIfBusy } from './lib/report.mjs';

const AIM_MS = 100;
const CHUNK = 1000;
const HARDWARE = ['rpi4', 'rpi5', 'x86', 'imx8'];
const VERSIONS = ['1.0.0', '1.1.0', '2.0.0', '2.1.0'];
const SITES = 50;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => process.stderr.write(`[bench] ${message}\n`);

benchArgs(log, headerHelp(import.meta.url));
const nodeCount = Number(process.env.BENCH_NODES ?? 100_000);
const repeats = Number(process.env.BENCH_REPEATS ?? 30);
if (!Number.isInteger(nodeCount) || nodeCount < 1000 || !Number.isInteger(repeats) || repeats < 1) {
  log('BENCH_NODES must be an integer >= 1000 and BENCH_REPEATS an integer >= 1');
  process.exit(2);
}
const dialects = benchDialects(log);
const buildDir = resolve(process.env.BENCH_BUILD_DIR ?? root);
const { cleanups, cleanup } = cleanupOnExit(log);

function builtFile(...path) {
  const file = join(buildDir, 'dist', ...path);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`make bench\`, which builds first`);
  return file;
}

const [configLib, dbLib] = await Promise.all(
  ['config', 'db'].map((name) => import(pathToFileURL(builtFile('libs', name, 'src', 'index.js')).href)),
);

/** The built api on `database`, in a fresh data dir, with nothing of the caller's Otter configuration. */
async function startApi(database, redisUrl, local) {
  const entry = builtFile('apps', 'api', 'src', 'main.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-bench-nodes-'));
  local.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('OTTER_') && name !== 'DATABASE_URL'),
  );
  Object.assign(env, {
    OTTER_DATA_DIR: dataDir,
    OTTER_HOST: '127.0.0.1',
    OTTER_PORT: String(await freePort()),
    OTTER_LOG_LEVEL: 'warn',
    REDIS_URL: redisUrl,
    OTTER_QUEUE_PREFIX: `bench${randomBytes(5).toString('hex')}`,
    DATABASE_URL: database === 'sqlite' ? `sqlite:${join(dataDir, 'otter.sqlite')}` : database,
  });
  const group = new ProcessGroup({ graceMs: 10_000 });
  const api = group.start('api', process.execPath, [entry], { env, cwd: buildDir });
  local.push(() => group.stop());
  const base = `http://127.0.0.1:${env.OTTER_PORT}`;
  await waitForHttp(`${base}/health`, { process: api, accept: (s) => s === 200, timeoutMs: 120_000 });
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  return { base, token, dataDir, config: configLib.loadConfig(env) };
}

/** 100,000 nodes as the fleet the header describes; returns the rows in list order (created_at, id). */
async function seed(db, t0) {
  const iso = (ms) => new Date(ms).toISOString();
  const rows = [];
  const labels = [];
  for (let i = 0; i < nodeCount; i++) {
    const r = Math.random();
    const lastVerdict =
      r < 0.9
        ? { passed: true, at: iso(t0 - Math.random() * 3_600_000) }
        : r < 0.95
          ? { passed: true, at: iso(t0 - 3 * 86_400_000) }
          : r < 0.98
            ? { passed: false, at: iso(t0 - Math.random() * 86_400_000), reason: 'PCR 9 differs' }
            : null;
    const row = dbLib.testNodeRow({
      id: randomUUID(),
      hardwareId: HARDWARE[i % HARDWARE.length],
      state: Math.random() < 0.97 ? 'active' : 'pending-approval',
      runningVersion: VERSIONS[Math.floor(Math.random() * VERSIONS.length)],
      labels: { site: `s${i % SITES}` },
      // One node a second over the last ~28 hours of enrollments: the list order is the seeding order.
      createdAt: iso(t0 - (nodeCount - i) * 1000),
      lastSeenAt: Math.random() < 0.05 ? null : iso(t0 - Math.random() * 3 * 86_400_000),
      lastVerdict,
    });
    rows.push(row);
    labels.push(...dbLib.testNodeLabelRows(row));
  }
  for (let i = 0; i < rows.length; i += CHUNK) {
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto('nodes')
        .values(rows.slice(i, i + CHUNK))
        .execute();
      await trx
        .insertInto('node_labels')
        .values(labels.slice(i, i + CHUNK))
        .execute();
    });
  }
  return rows;
}

/** The cursor the api would hand out after `row` (its format: base64url JSON [created_at, id]). */
const cursorAfter = (row) => Buffer.from(JSON.stringify([row.created_at, row.id])).toString('base64url');

async function timePage(api, query) {
  const url = `${api.base}/api/v1/nodes${query ? `?${query}` : ''}`;
  const once = async () => {
    const started = performance.now();
    const res = await fetch(url, { headers: { authorization: `Bearer ${api.token}` } });
    const body = await res.json();
    const ms = performance.now() - started;
    if (res.status !== 200 || !Array.isArray(body.nodes) || body.nodes.length === 0) {
      throw new Error(`GET ${url}: HTTP ${res.status}, ${JSON.stringify(body).slice(0, 300)}`);
    }
    return { ms, count: body.nodes.length };
  };
  for (let i = 0; i < 3; i++) await once();
  const runs = [];
  for (let i = 0; i < repeats; i++) runs.push(await once());
  const times = runs.map((r) => r.ms).sort((a, b) => a - b);
  return {
    median: times[Math.floor(times.length / 2)],
    p95: times[Math.min(times.length - 1, Math.ceil(times.length * 0.95) - 1)],
    count: runs[0].count,
  };
}

async function runDialect(dialect, redisUrl) {
  const local = [];
  const dropLocal = async () => {
    for (const fn of local.splice(0).reverse()) await fn();
  };
  cleanups.push(dropLocal);
  try {
    let database = 'sqlite';
    if (dialect === 'postgres') {
      database = (await freshPgSchema(local)).url;
    }
    const api = await startApi(database, redisUrl, local);
    const db = dbLib.createDatabase(api.config.database);
    local.push(() => db.destroy());
    const seeding = performance.now();
    const rows = await seed(db, Date.now());
    if (dialect === 'postgres') await pgQuery(database, 'ANALYZE');
    log(`${dialect}: ${rows.length} nodes seeded in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
    const queries = [
      ['default page', ''],
      ['deep cursor', `cursor=${cursorAfter(rows[rows.length - 101])}`],
      ['hardware+state+ver', 'hardware=x86&state=active&version=2.0.0'],
      ['label', 'label=site=s17'],
      ['attestation=failed', 'attestation=failed'],
      ['notSeenFor=1d', 'notSeenFor=1d'],
      ['page of 1000', 'limit=1000'],
    ];
    const results = [];
    for (const [name, query] of queries) {
      const r = await timePage(api, query);
      results.push([name, r]);
      log(
        `${dialect} ${name}: median ${r.median.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms (${r.count} nodes)`,
      );
    }
    return results;
  } finally {
    cleanups.splice(cleanups.indexOf(dropLocal), 1);
    await dropLocal();
  }
}

async function main() {
  warnIfBusy(log, 'the times');
  const group = new ProcessGroup({ graceMs: 5_000 });
  cleanups.push(() => group.stop());
  const redisUrl = await ensureRedis(group, {
    REDIS_URL: process.env.REDIS_URL ?? process.env.OTTER_TEST_REDIS_URL,
  });
  const rows = [['query', ...dialects.flatMap((d) => [`${d} median ms`, `${d} p95 ms`]), 'nodes']];
  const byDialect = [];
  for (const dialect of dialects) byDialect.push(await runDialect(dialect, redisUrl));
  let worst = 0;
  for (let q = 0; q < byDialect[0].length; q++) {
    const [name, first] = byDialect[0][q];
    const cells = byDialect.flatMap((results) => {
      const r = results[q][1];
      worst = Math.max(worst, r.median);
      return [r.median.toFixed(1), r.p95.toFixed(1)];
    });
    rows.push([name, ...cells, String(first.count)]);
  }
  process.stdout.write(
    `\nGET /api/v1/nodes with ${nodeCount} nodes, ${repeats} requests a query (built api)\n`,
  );
  for (const line of table(rows)) process.stdout.write(`${line}\n`);
  process.stdout.write(
    `aim: every median under ${AIM_MS} ms: ${worst < AIM_MS ? 'met' : `missed (worst ${worst.toFixed(1)} ms)`}\n`,
  );
}

await runBench(main, log, cleanup);
