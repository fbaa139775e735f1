#!/usr/bin/env node
// `make bench`: how close Otter's timestamp.json comes to the fastest a Node server can serve it.
// timestamp.json is the one TUF file every agent fetches on every poll, mostly with If-None-Match, so it
// sets the fleet size one api replica can carry. The built api runs on a fresh data dir, a free port and
// loopback only; a bare node:http server in this process serves the same bytes, ETag and 304 logic; then
// autocannon measures both, unconditional and conditional. The aim is Otter >= 0.7 x bare requests/s.
//
//   node bench/timestamp.bench.mjs              # BENCH_SECONDS (default 10) per run, after a 2 s warm-up
//   node bench/timestamp.bench.mjs --self-test  # the "Otter" side is a second bare server (no build needed)
//
// Exits non-zero only when something failed to run, never because of a ratio.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ProcessGroup, ensureRedis, freePort, waitForHttp } from '../scripts/lib/processes.mjs';
import { startBareServer } from './bare-server.mjs';
import { benchArgs } from './lib/bench-cli.mjs';
import { cleanupOnExit } from './lib/cleanups.mjs';
import { runBench, warnIfBusy } from './lib/report.mjs';

const AIM = 0.7;
const CONNECTIONS = 50;
const WARMUP_SECONDS = 2;
const TIMESTAMP_PATH = '/tuf/image/metadata/timestamp.json';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (message) => process.stderr.write(`[bench] ${message}\n`);

const args = benchArgs(
  log,
  'usage: node bench/timestamp.bench.mjs [--self-test]\n' +
    `  BENCH_SECONDS  seconds per measured run (default 10); each run follows a ${WARMUP_SECONDS} s warm-up\n` +
    '  --self-test    compare two bare servers instead of the built api (checks this script alone)\n',
  ['--self-test'],
);
const selfTest = args.has('--self-test');
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
if (!Number.isFinite(seconds) || seconds <= 0) {
  log(`BENCH_SECONDS must be a positive number of seconds, not ${JSON.stringify(process.env.BENCH_SECONDS)}`);
  process.exit(2);
}

const group = new ProcessGroup({ graceMs: 10_000 });
/** @type {{ name: string, code: number | null, signal: string | null } | undefined} */
let died;
void group.unexpectedExit.then((exit) => {
  died = exit;
});
const { cleanups, cleanup } = cleanupOnExit(log);

/** Starts the built api on embedded defaults in a fresh data dir; resolves with its base URL. */
async function startOtter() {
  const entry = join(root, 'dist', 'apps', 'api', 'src', 'main.js');
  if (!existsSync(entry))
    throw new Error('dist/apps/api/src/main.js is missing: run `make bench`, which builds first');
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-bench-'));
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  cleanups.push(() => group.stop());
  // Nothing from the caller's Otter configuration leaks in: the api runs on its embedded defaults
  // (SQLite and blobs in the fresh data dir), with only Redis taken from the environment when set.
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
  });
  const api = group.start('api', process.execPath, [entry], { env, cwd: root });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/health`, { process: api, accept: (s) => s === 200, timeoutMs: 120_000 });
  await waitForHttp(base + TIMESTAMP_PATH, { process: api, accept: (s) => s === 200, timeoutMs: 30_000 });
  return base;
}

/** A stand-in for the api in --self-test: a second bare server with a timestamp-shaped body. */
async function startStandIn() {
  const body = Buffer.from(
    JSON.stringify({
      signatures: [{ keyid: 'ab'.repeat(32), sig: 'cd'.repeat(64) }],
      signed: {
        _type: 'timestamp',
        spec_version: '1.0.31',
        version: 1,
        expires: '2030-01-01T00:00:00Z',
        meta: { 'snapshot.json': { version: 1 } },
      },
    }),
  );
  const server = await startBareServer({
    body,
    etag: '"self-test-1"',
    headers: { 'content-type': 'application/json' },
  });
  cleanups.push(server.close);
  return server.url;
}

/** One autocannon run: warm-up first (not counted), then `seconds` of measurement. */
async function measure(label, url, headers) {
  log(`${label}: ${WARMUP_SECONDS} s warm-up + ${seconds} s`);
  const result = await autocannon({
    url,
    headers,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    warmup: { connections: CONNECTIONS, duration: WARMUP_SECONDS },
  });
  if (result.requests.total === 0)
    throw new Error(`${label}: no request completed (errors: ${result.errors})`);
  return {
    label,
    rps: result.requests.mean,
    p50: result.latency.p50,
    p99: result.latency.p99,
    // 3xx counts as success here: 304 is the expected answer to a conditional request.
    bad: result['1xx'] + result['4xx'] + result['5xx'],
    errors: result.errors + result.timeouts,
    statuses: Object.keys(result.statusCodeStats ?? {}).join(','),
  };
}

function printReport(rows, ratios, otterName) {
  const table = [
    ['run', 'req/s (mean)', 'p50 ms', 'p99 ms', 'non-2xx/3xx', 'errors', 'status'],
    ...rows.map((r) => [
      r.label,
      r.rps.toFixed(0),
      r.p50.toFixed(2),
      r.p99.toFixed(2),
      String(r.bad),
      String(r.errors),
      r.statuses,
    ]),
  ];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const line = (row) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const out = [
    '',
    `GET ${TIMESTAMP_PATH}: ${CONNECTIONS} connections, pipelining 1, ${seconds} s per run after ${WARMUP_SECONDS} s warm-up`,
    '',
    line(table[0]),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...table.slice(1).map(line),
    '',
    ...ratios.map(
      ({ kind, ratio }) =>
        `${otterName}/bare requests/s, ${kind.padEnd(13)}: ${ratio.toFixed(2)}  ` +
        `(aim >= ${AIM}: ${ratio >= AIM ? 'met' : 'NOT met'})`,
    ),
    '',
  ];
  process.stdout.write(out.join('\n'));
}

async function main() {
  const otterName = selfTest ? 'stand-in' : 'otter';
  if (selfTest) log('--self-test: the "otter" rows measure a second bare server, not Otter');
  const otterBase = selfTest ? await startStandIn() : await startOtter();
  const otterUrl = otterBase + TIMESTAMP_PATH;

  const first = await fetch(otterUrl);
  if (first.status !== 200) throw new Error(`${otterUrl} answered ${first.status}`);
  const body = Buffer.from(await first.arrayBuffer());
  const etag = first.headers.get('etag');
  if (!etag) throw new Error(`${otterUrl} sent no ETag: the conditional runs cannot be measured`);
  const copied = {};
  for (const name of ['content-type', 'cache-control']) {
    const value = first.headers.get(name);
    if (value) copied[name] = value;
  }
  const conditional = await fetch(otterUrl, { headers: { 'if-none-match': etag } });
  await conditional.body?.cancel();
  if (conditional.status !== 304) {
    log(`warning: ${otterUrl} answered ${conditional.status}, not 304, to If-None-Match: ${etag}`);
  }

  const bare = await startBareServer({ body, etag, headers: copied });
  cleanups.push(bare.close);
  const bareUrl = bare.url + TIMESTAMP_PATH;
  log(`${otterName}: ${otterUrl} (${body.length} bytes, ETag ${etag}); bare: ${bareUrl}`);

  const ifNoneMatch = { 'if-none-match': etag };
  warnIfBusy(log, 'the ratios');
  // Each Otter run is followed at once by its bare counterpart, so a change in the machine's load
  // between runs skews a ratio as little as possible.
  const otterUnconditional = await measure(`${otterName} unconditional`, otterUrl, {});
  const bareUnconditional = await measure('bare unconditional', bareUrl, {});
  const otterConditional = await measure(`${otterName} conditional`, otterUrl, ifNoneMatch);
  const bareConditional = await measure('bare conditional', bareUrl, ifNoneMatch);
  const rows = [otterUnconditional, otterConditional, bareUnconditional, bareConditional];

  if (died) throw new Error(`${died.name} exited during the runs (code ${died.code}, signal ${died.signal})`);
  // Scheduled re-signing during the runs would change the ETag and turn 304s into 200s.
  const after = await fetch(otterUrl);
  await after.body?.cancel();
  if (after.headers.get('etag') !== etag)
    log(`warning: the ETag changed during the runs (now ${after.headers.get('etag')})`);

  printReport(
    rows,
    [
      { kind: 'unconditional', ratio: otterUnconditional.rps / bareUnconditional.rps },
      { kind: 'conditional', ratio: otterConditional.rps / bareConditional.rps },
    ],
    otterName,
  );
}

await runBench(main, log, cleanup);
