#!/usr/bin/env node
// `make bench`: the event stream under a rollout. The built api runs on a fresh data dir (SQLite; the stream
// touches no database) and a free loopback port; BENCH_CLIENTS clients follow GET /api/v1/events, every one
// of them every event. This process publishes the events of a BENCH_NODES-node rollout with libs/events'
// own EventPublisher, as the scheduler and the api do: per node an admission, six update steps and the
// success, plus the waves, in batches of 100 (a scheduler tick's size).
//
//   1. throughput: the whole rollout's events published as fast as Redis takes them; events delivered per
//      second over all clients, from the first publish to the last event read by the last client
//   2. delay: the same kind of events paced at BENCH_RATE events/s for BENCH_SECONDS; the delay from the
//      event's `at` (set when it is published, right after the change's commit) to each client reading it,
//      p50 / p99 / max over every client's every event (aim: p99 under 1 s)
//
//   node bench/events.bench.mjs
//     BENCH_NODES       simulated rollout nodes (default 10000)
//     BENCH_CLIENTS     SSE clients (default 100)
//     BENCH_RATE        events/s in the delay run (default 1000)
//     BENCH_SECONDS     length of the delay run (default 10)
//     BENCH_BUILD_DIR   directory whose dist/ holds the built api and libs (default: this repository)
//     REDIS_URL         Redis (default: a local one, started if none answers); keys get a prefix of their own
//
// The clients run in this process, on the same cores as the api and Redis: on 2 cores they cost a share of
// what they measure. Exits non-zero only when something failed to run (a client that missed events).
import { randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { ProcessGroup, ensureRedis, freePort, waitForHttp } from '../scripts/lib/processes.mjs';
import { benchArgs, headerHelp } from './lib/bench-cli.mjs';
import { cleanupOnExit } from './lib/cleanups.mjs';
import { runBench, table, warnIfBusy } from './lib/report.mjs';

const log = (message) => process.stderr.write(`[bench:events] ${message}\n`);
benchArgs(log, headerHelp(import.meta.url));
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = resolve(process.env.BENCH_BUILD_DIR ?? root);
const int = (name, fallback, min) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < min) {
    log(`${name} must be an integer >= ${min}, not ${JSON.stringify(process.env[name])}`);
    process.exit(2);
  }
  return value;
};
const nodeCount = int('BENCH_NODES', 10_000, 10);
const clientCount = int('BENCH_CLIENTS', 100, 1);
const rate = int('BENCH_RATE', 1000, 1);
const seconds = int('BENCH_SECONDS', 10, 1);

const group = new ProcessGroup({ graceMs: 10_000 });
const { cleanups, cleanup } = cleanupOnExit(log);
cleanups.push(() => group.stop());

function builtLib(name) {
  const file = join(buildDir, 'dist', 'libs', name, 'src', 'index.js');
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`make bench\`, which builds first`);
  return import(pathToFileURL(file).href);
}

/** One follower of the stream: counts events, and in the delay run records each one's delay. */
function follow(base, token) {
  const client = { received: 0, delays: /** @type {number[] | undefined} */ (undefined), close: () => {} };
  let opened = false;
  return new Promise((resolveOpen, reject) => {
    const req = request(`${base}/api/v1/events`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`GET /api/v1/events: ${res.statusCode}`));
      res.setEncoding('utf8');
      let rest = '';
      res.on('data', (chunk) => {
        const text = rest + chunk;
        const end = text.lastIndexOf('\n\n');
        rest = end < 0 ? text : text.slice(end + 2);
        if (end < 0) return;
        const now = Date.now();
        for (const match of text.slice(0, end).matchAll(/"at":"([^"]+)"/g)) {
          client.received++;
          client.delays?.push(now - Date.parse(match[1]));
        }
      });
      client.close = () => req.destroy();
      opened = true;
      resolveOpen(client);
    });
    // After it opened, an error is the connection's end (closed at cleanup), not a failure to report.
    req.on('error', (e) => (opened ? undefined : reject(e)));
    req.end();
  });
}

/** The events of a rollout of `nodes` node ids, in the order a rollout produces them. */
function* rolloutEvents(rolloutId, nodes) {
  const ids = { rolloutId, hardwareId: 'bench-hw' };
  yield { kind: 'rollout.started', ...ids, nodes: nodes.length, waves: [nodes.length] };
  yield { kind: 'rollout.wave.started', ...ids, wave: 1 };
  for (const nodeId of nodes)
    yield { kind: 'rollout.node.admitted', ...ids, nodeId, wave: 1, fromVersion: '1.0.0' };
  for (const step of ['downloading', 'installed', 'rebooting', 'booted', 'attested', 'committed'])
    for (const nodeId of nodes)
      yield {
        kind: 'rollout.node.step',
        ...ids,
        nodeId,
        step,
        version: '2.0.0',
        ...(step === 'downloading' ? { bytes: 123_456_789 } : {}),
      };
  for (const nodeId of nodes) yield { kind: 'rollout.node.succeeded', ...ids, nodeId };
  yield { kind: 'rollout.completed', ...ids };
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function main() {
  warnIfBusy(log, 'the rates and delays');
  const [configLib, eventsLib] = await Promise.all(['config', 'events'].map(builtLib));
  const entry = join(buildDir, 'dist', 'apps', 'api', 'src', 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`make bench\`, which builds first`);
  const redisUrl = await ensureRedis(group);
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-bench-events-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const prefix = `bench${randomBytes(5).toString('hex')}`;
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('OTTER_') && name !== 'DATABASE_URL'),
  );
  Object.assign(env, {
    OTTER_DATA_DIR: dataDir,
    OTTER_HOST: '127.0.0.1',
    OTTER_PORT: String(await freePort()),
    OTTER_LOG_LEVEL: 'warn',
    REDIS_URL: redisUrl,
    OTTER_QUEUE_PREFIX: prefix,
    DATABASE_URL: `sqlite:${join(dataDir, 'otter.sqlite')}`,
  });
  cleanups.push(async () => {
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await redis.quit();
  });
  const api = group.start('api', process.execPath, [entry], { env, cwd: buildDir });
  const base = `http://127.0.0.1:${env.OTTER_PORT}`;
  await waitForHttp(`${base}/health`, { process: api, accept: (s) => s === 200, timeoutMs: 120_000 });
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();

  const config = configLib.loadConfig(env);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  cleanups.push(() => redis.quit());
  const publisher = new eventsLib.EventPublisher(redis, config);

  const clients = await Promise.all(Array.from({ length: clientCount }, () => follow(base, token)));
  cleanups.push(() => clients.forEach((c) => c.close()));
  await sleep(500);

  // 1. Throughput.
  const nodes = Array.from({ length: nodeCount }, () => randomUUID());
  const events = [...rolloutEvents(randomUUID(), nodes)];
  log(`throughput: ${events.length} events of a ${nodeCount}-node rollout to ${clientCount} clients`);
  const started = performance.now();
  for (let i = 0; i < events.length; i += 100) await publisher.publishAll(events.slice(i, i + 100));
  const published = performance.now();
  const deadline = Date.now() + 300_000;
  while (clients.some((c) => c.received < events.length)) {
    if (Date.now() > deadline) throw new Error('clients missed events in the throughput run');
    await sleep(20);
  }
  const delivered = performance.now();
  if (publisher.failed > 0) throw new Error(`${publisher.failed} events were not published`);
  const totalSeconds = (delivered - started) / 1000;

  // 2. Delay at a steady rate.
  for (const c of clients) {
    c.received = 0;
    c.delays = [];
  }
  const paced = [...rolloutEvents(randomUUID(), nodes)];
  const perTick = Math.max(1, Math.round(rate / 50));
  const total = Math.min(rate * seconds, paced.length);
  log(`delay: ${total} events at ${rate}/s to ${clientCount} clients`);
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += perTick) {
    await publisher.publishAll(paced.slice(sent, Math.min(total, sent + perTick)));
    const due = t0 + ((sent + perTick) / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  while (clients.some((c) => c.received < total)) {
    if (Date.now() > deadline + 60_000) throw new Error('clients missed events in the delay run');
    await sleep(20);
  }
  const delays = clients.flatMap((c) => c.delays).sort((a, b) => a - b);

  const rows = [
    ['run', 'events', 'clients', 'deliveries', 'seconds', 'deliveries/s', 'p50 ms', 'p99 ms', 'max ms'],
    [
      'throughput',
      String(events.length),
      String(clientCount),
      String(events.length * clientCount),
      totalSeconds.toFixed(1),
      String(Math.round((events.length * clientCount) / totalSeconds)),
      '-',
      '-',
      '-',
    ],
    [
      `delay @${rate}/s`,
      String(total),
      String(clientCount),
      String(delays.length),
      seconds.toFixed(1),
      String(Math.round(delays.length / seconds)),
      String(percentile(delays, 50)),
      String(percentile(delays, 99)),
      String(delays.at(-1)),
    ],
  ];
  for (const line of table(rows)) process.stdout.write(`${line}\n`);
  process.stdout.write(
    `publishing took ${((published - started) / 1000).toFixed(1)} s of the throughput run (${Math.round(events.length / ((published - started) / 1000))} events/s into Redis)\n`,
  );
}

await runBench(main, log, cleanup);
