import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getQueueToken } from '@nestjs/bullmq';
import type { INestApplicationContext } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { ATTESTATION_STATUSES, type NodeListDto } from '#otter/contracts';
import { testDatabases, type Db } from '#otter/db';
import { MetricsEndpoint } from '#otter/metrics';
import { QUEUES } from '#otter/queue';
import { RolloutFixtures } from '../apps/api/src/rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { deviceCredentialsFor } from '../apps/api/src/testing/software-device-key.js';
import { TpmNodes } from '../apps/api/src/testing/tpm-nodes.js';
import { DirectorMetadataStore } from '../libs/director/src/director-metadata.store.js';
import { createDeltaWorker } from '../apps/delta-worker/src/create-delta-worker.js';
import { createScheduler } from '../apps/scheduler/src/create-scheduler.js';
import { Exposition } from '../libs/metrics/src/testing.js';

// /metrics of a real api over both databases, in a scenario set up here (nodes in known attestation states,
// rollouts, delta builds and downloads, director metadata, verdicts, queued jobs), then the scheduler's and
// the delta-worker's own metrics ports. Values are checked, not only names.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const TOKEN = `scrape-${randomBytes(12).toString('hex')}`;
const HOUR = 3600;
const ago = (seconds: number): Date => new Date(Date.now() - seconds * 1000);
const dbUrl = (database: (typeof dbs)[number]['config']): string =>
  database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`;

async function scrape(url: string, token: string | undefined = TOKEN): Promise<Exposition> {
  const res = await fetch(`${url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return Exposition.parse(await res.text());
}

describe.each(dbs)('api /metrics on $name', ({ name, config: database }) => {
  let api: ApiHarness;
  let fixtures: RolloutFixtures;
  let tpm: TpmNodes;
  const hw = `mx-${name}`;
  const ids: Record<string, string> = {};
  let pausedRollout: string;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: dbUrl(database),
      OTTER_METRICS_TOKEN: TOKEN,
      // Passing verdicts older than an hour count as stale, in /metrics and in the node list alike.
      OTTER_ATTESTATION_FRESHNESS: String(HOUR),
    });
    fixtures = new RolloutFixtures(api);
    tpm = await TpmNodes.start();

    // Nodes of `hw`, one per attestation status, and one whose latest verdict (failed) follows a pass.
    ids.passed = await fixtures.node(hw, '1.0.0');
    await fixtures.verdict(ids.passed, true, ago(60));
    ids.failed = await fixtures.node(hw, '1.0.0');
    await fixtures.verdict(ids.failed, false, ago(60));
    ids.stale = await fixtures.node(hw, '1.0.0');
    await fixtures.verdict(ids.stale, true, ago(2 * HOUR));
    ids.never = await fixtures.node(hw, '2.0.0');
    ids.flipped = await fixtures.node(hw, '1.0.0');
    await fixtures.verdict(ids.flipped, true, ago(120));
    await fixtures.verdict(ids.flipped, false, ago(30));
    await api.db.updateTable('nodes').set({ state: 'revoked' }).where('id', '=', ids.flipped).execute();

    // A paused rollout with two nodes downloading in wave 0, and a finished one (its waves are not exported).
    const release = await fixtures.release(hw, '2.0.0');
    pausedRollout = await fixtures.rolloutRows({ id: release.id, hardwareId: hw }, [ids.passed, ids.failed], {
      state: 'paused',
      nodeState: 'downloading',
      admittedAt: ago(60),
      nodeDeadlineSeconds: 3600,
    });
    const done = await fixtures.rolloutRows({ id: release.id, hardwareId: hw }, [ids.stale], {
      state: 'completed',
      nodeState: 'succeeded',
      admittedAt: ago(60),
      nodeDeadlineSeconds: 3600,
    });
    ids.completedRollout = done;

    // Delta builds: one published (saves 800 of 1000 bytes), one failed; a node reports downloading the
    // published one in 300 bytes (700 saved).
    const deltaPath = await deltaBuild(api.db, hw, 'published', 1000, 200);
    await deltaBuild(api.db, hw, 'failed', 1000, null);
    const downloader = await deviceCredentialsFor(api.app, ids.passed);
    const downloadsUrl = `${api.url}/api/v1/devices/me/downloads`;
    const downloaded = await fetch(downloadsUrl, {
      method: 'POST',
      headers: { ...(await downloader.headers('POST', downloadsUrl)), 'content-type': 'application/json' },
      body: JSON.stringify({ targetPath: deltaPath, method: 'delta', bytesDownloaded: 300, fullBytes: 1000 }),
    });
    expect(downloaded.status).toBeLessThan(300);

    // Director metadata of two nodes: the soonest latest timestamp expires in an hour. An older version of
    // the first node's timestamp expires sooner, but only latest versions count.
    await directorTimestamp(api, ids.passed, 1, 600);
    await directorTimestamp(api, ids.passed, 2, HOUR);
    await directorTimestamp(api, ids.failed, 5, 2 * HOUR);

    // A delayed job in the delta-build queue (this api's prefix is its own).
    const deltaQueue = api.app.get<Queue>(getQueueToken(QUEUES.deltaBuild), { strict: false });
    await deltaQueue.add('metrics-probe', {}, { delay: 3_600_000, jobId: `probe-${randomUUID()}` });

    // Attestation: a genuine passing quote from a software TPM, and a failed integrity report.
    const attester = await tpm.seed(api.db, { state: 'active', hardwareId: `${hw}-tpm` });
    const device = await deviceCredentialsFor(api.app, attester);
    const attested = await tpm.attest(api.url, device, {});
    expect(attested.status).toBe(200);
    const reportUrl = `${api.url}/api/v1/devices/me/reports`;
    const report = await fetch(reportUrl, {
      method: 'POST',
      headers: { ...(await device.headers('POST', reportUrl)), 'content-type': 'application/json' },
      body: JSON.stringify({
        kind: 'integrity',
        ok: false,
        event: 'dm-verity',
        at: new Date().toISOString(),
      }),
    });
    expect(report.status).toBe(202);
  }, 120_000);
  afterAll(async () => {
    await api?.close();
    await tpm?.stop();
  });

  it('refuses a scrape without the OTTER_METRICS_TOKEN bearer, and with a wrong one', async () => {
    for (const headers of [
      {},
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Basic ${TOKEN}` },
      { authorization: 'Bearer ' },
    ]) {
      const res = await fetch(`${api.url}/metrics`, { headers });
      expect(res.status).toBe(401);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).toBe('METRICS_UNAUTHORIZED');
    }
  });

  it('counts nodes by hardware, state, running version and attestation status', async () => {
    const m = await scrape(api.url);
    expect(m.families.get('otter_nodes')).toBe('GAUGE');
    const nodes = (state: string, version: string, attestation: string) =>
      m.value('otter_nodes', { hardware_id: hw, state, running_version: version, attestation });
    expect(nodes('active', '1.0.0', 'passed')).toBe(1);
    expect(nodes('active', '1.0.0', 'failed')).toBe(1);
    expect(nodes('active', '1.0.0', 'stale')).toBe(1);
    expect(nodes('active', '2.0.0', 'never')).toBe(1);
    expect(nodes('revoked', '1.0.0', 'failed')).toBe(1);
    // Every status of each (hardware, state, version) group is a series, 0 included: 3 groups of 4.
    expect(m.find('otter_nodes', { hardware_id: hw })).toHaveLength(12);
    expect(m.find('otter_nodes', { hardware_id: hw }).filter((s) => s.value > 0)).toHaveLength(5);
    // The TPM-backed node attested just now; its verdict is the latest.
    expect(
      m
        .find('otter_nodes', { hardware_id: `${hw}-tpm` })
        .filter((s) => s.value > 0)
        .map((s) => [s.labels.attestation, s.value]),
    ).toEqual([['failed', 1]]);
  });

  it('judges attestation status as the node list does: one vocabulary, one freshness', async () => {
    const m = await scrape(api.url);
    for (const status of ATTESTATION_STATUSES) {
      const { nodes } = await api.admin<NodeListDto>(
        'GET',
        `/api/v1/nodes?hardware=${hw}&attestation=${status}&limit=100`,
      );
      const counted = m
        .find('otter_nodes', { hardware_id: hw, attestation: status })
        .reduce((sum, s) => sum + s.value, 0);
      expect(counted, status).toBe(nodes.length);
    }
    // The node whose passing verdict is two hours old (freshness: one hour) is stale in both.
    const stale = await api.admin<NodeListDto>('GET', `/api/v1/nodes?hardware=${hw}&attestation=stale`);
    expect(stale.nodes.map((n) => n.id)).toEqual([ids.stale]);
    expect(
      m.value('otter_nodes', {
        hardware_id: hw,
        state: 'active',
        running_version: '1.0.0',
        attestation: 'stale',
      }),
    ).toBe(1);
  });

  it('counts rollouts by state (every state present) and the waves of unfinished ones', async () => {
    const m = await scrape(api.url);
    expect(m.value('otter_rollouts', { state: 'paused' })).toBe(1);
    expect(m.value('otter_rollouts', { state: 'completed' })).toBe(1);
    for (const state of ['draft', 'running', 'aborted']) expect(m.value('otter_rollouts', { state })).toBe(0);
    expect(
      m
        .find('otter_rollout_wave_nodes')
        .map((s) => [s.labels.rollout_id, s.labels.wave, s.labels.state, s.value]),
    ).toEqual([[pausedRollout, '0', 'downloading', 2]]);
    expect(m.find('otter_rollout_wave_nodes', { rollout_id: ids.completedRollout })).toEqual([]);
  });

  it('reports delta builds by state and the bytes deltas save', async () => {
    const m = await scrape(api.url);
    expect(m.value('otter_delta_builds', { state: 'published' })).toBe(1);
    expect(m.value('otter_delta_builds', { state: 'failed' })).toBe(1);
    expect(m.value('otter_delta_builds', { state: 'queued' })).toBe(0);
    expect(m.value('otter_delta_build_bytes_saved', { hardware_id: hw })).toBe(800);
    expect(m.value('otter_delta_download_bytes_saved_total', { hardware_id: hw })).toBe(700);
  });

  it('counts attestation verifications by outcome', async () => {
    const m = await scrape(api.url);
    expect(m.value('otter_attestation_verifications_total', { outcome: 'passed' })).toBe(1);
    expect(m.value('otter_attestation_verifications_total', { outcome: 'failed' })).toBe(1);
  });

  it('gives seconds until each image role expires and the soonest director expiry per role', async () => {
    const m = await scrape(api.url);
    const ttl = api.config.tuf;
    const expiry = (repository: string, role: string) =>
      m.value('otter_tuf_role_expiry_seconds', { repository, role });
    // Signed at boot or just now: within a minute of the configured lifetimes.
    for (const [role, seconds] of [
      ['root', ttl.rootTtl],
      ['targets', ttl.targetsTtl],
      ['snapshot', ttl.snapshotTtl],
      ['timestamp', ttl.timestampTtl],
    ] as const) {
      expect(expiry('image', role)).toBeGreaterThan(seconds - 120);
      expect(expiry('image', role)).toBeLessThanOrEqual(seconds);
    }
    expect(expiry('director', 'timestamp')).toBeGreaterThan(HOUR - 60);
    expect(expiry('director', 'timestamp')).toBeLessThanOrEqual(HOUR);
    expect(expiry('director', 'root')).toBeGreaterThan(0);
  });

  it('shows queue depths by state, read from Redis', async () => {
    const m = await scrape(api.url);
    expect(m.value('otter_queue_jobs', { queue: QUEUES.deltaBuild, state: 'delayed' })).toBe(1);
    for (const state of ['waiting', 'active', 'failed'])
      expect(m.value('otter_queue_jobs', { queue: QUEUES.deltaBuild, state })).toBe(0);
    expect(m.find('otter_queue_jobs', { queue: QUEUES.rollouts })).toHaveLength(4);
  });

  it('times requests by route template and status, never by raw URL', async () => {
    const before = await scrape(api.url);
    const route = '/api/v1/rollouts/:id';
    const count = (e: Exposition, labels: Record<string, string>) =>
      e.value('otter_http_request_duration_seconds_count', labels) ?? 0;
    const admin = { method: 'GET', route, status: '200' };
    const missing = { method: 'GET', route, status: '404' };
    await api.admin('GET', `/api/v1/rollouts/${pausedRollout}`);
    await api.admin('GET', `/api/v1/rollouts/${ids.completedRollout}`);
    const notFound = await fetch(`${api.url}/api/v1/rollouts/${randomUUID()}`, {
      headers: {
        authorization: `Bearer ${readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim()}`,
      },
    });
    expect(notFound.status).toBe(404);
    const unmatched = await fetch(`${api.url}/no/such/${randomUUID()}`);
    expect(unmatched.status).toBe(404);

    const after = await scrape(api.url);
    expect(count(after, admin) - count(before, admin)).toBe(2);
    expect(count(after, missing) - count(before, missing)).toBe(1);
    expect(count(after, { method: 'GET', route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(1);
    const routes = new Set(
      after.find('otter_http_request_duration_seconds_count').map((s) => s.labels.route),
    );
    expect([...routes].filter((r) => /[0-9a-f]{8}-[0-9a-f]{4}/.test(r))).toEqual([]);
    expect(after.families.get('otter_http_request_duration_seconds')).toBe('HISTOGRAM');
    // Buckets are cumulative: +Inf holds every request.
    expect(after.value('otter_http_request_duration_seconds_bucket', { ...admin, le: '+Inf' })).toBe(
      count(after, admin),
    );
  });

  it('exports the Node.js process metrics under the otter_ prefix', async () => {
    const m = await scrape(api.url);
    expect(m.families.get('otter_process_resident_memory_bytes')).toBe('GAUGE');
    expect(m.families.get('otter_nodejs_eventloop_lag_seconds')).toBe('GAUGE');
  });
});

describe('the scheduler and delta-worker metrics ports', () => {
  const database = dbs[0].config;
  const contexts: INestApplicationContext[] = [];
  afterAll(async () => {
    for (const c of contexts.reverse()) await c.close();
  });

  const env = (extra: Record<string, string>) =>
    loadConfig({
      OTTER_DATA_DIR: mkdtempSync(join(tmpdir(), 'otter-metrics-')),
      OTTER_LOG_LEVEL: 'silent',
      OTTER_ENV: 'test',
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      DATABASE_URL: dbUrl(database),
      ...extra,
    });

  async function until<T>(what: () => Promise<T | undefined>, label: string): Promise<T> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const value = await what();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it('serves none unless OTTER_METRICS_PORT is set', async () => {
    const scheduler = await createScheduler(env({}));
    contexts.push(scheduler);
    expect(scheduler.get(MetricsEndpoint, { strict: false }).port).toBeUndefined();
  });

  it('serves the scheduler on loopback: tick durations, job durations and its queues', async () => {
    const scheduler = await createScheduler(
      env({ OTTER_METRICS_PORT: '0', OTTER_ROLLOUT_TICK_SECONDS: '1', OTTER_METRICS_TOKEN: TOKEN }),
    );
    contexts.push(scheduler);
    const port = scheduler.get(MetricsEndpoint, { strict: false }).port!;
    const url = `http://127.0.0.1:${port}`;
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/other`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);

    const m = await until(async () => {
      const e = await scrape(url);
      return (e.value('otter_scheduler_tick_duration_seconds_count', { outcome: 'ok' }) ?? 0) >= 1 &&
        (e.value('otter_queue_job_duration_seconds_count', {
          queue: QUEUES.rollouts,
          job: 'rollout-tick',
          outcome: 'completed',
        }) ?? 0) >= 1
        ? e
        : undefined;
    }, 'a rollout tick');
    for (const queue of [QUEUES.rollouts, QUEUES.tufMaintenance, QUEUES.retention])
      expect(m.find('otter_queue_jobs', { queue })).toHaveLength(4);
    // Fleet gauges come from the api only.
    expect(m.families.has('otter_nodes')).toBe(false);
    expect(m.families.get('otter_process_cpu_seconds_total')).toBe('COUNTER');
    // Loopback by default (OTTER_METRICS_HOST): no other interface answers.
    expect(await reachableOnOtherInterface(port)).toBe(false);
  });

  it('serves the delta-worker: its queue and the durations of the jobs it ran', async () => {
    const worker = await createDeltaWorker(env({ OTTER_METRICS_PORT: '0' }));
    contexts.push(worker);
    const port = worker.get(MetricsEndpoint, { strict: false }).port!;
    const url = `http://127.0.0.1:${port}`;
    const queue = worker.get<Queue>(getQueueToken(QUEUES.deltaBuild), { strict: false });
    // A job nobody handles: the worker logs it as unknown and completes it.
    await queue.add('metrics-probe', {});
    const m = await until(async () => {
      const e = await scrape(url, undefined);
      return e.find('otter_queue_job_duration_seconds_count', { queue: QUEUES.deltaBuild }).length > 0
        ? e
        : undefined;
    }, 'a delta-worker job');
    expect(m.find('otter_queue_jobs', { queue: QUEUES.deltaBuild })).toHaveLength(4);
    expect(m.families.has('otter_http_request_duration_seconds')).toBe(false);
  });
});

/** Whether the port answers on a non-loopback address of this machine (false when there is none). */
async function reachableOnOtherInterface(port: number): Promise<boolean> {
  const { networkInterfaces } = await import('node:os');
  const address = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (!address) return false;
  return fetch(`http://${address}:${port}/metrics`, { signal: AbortSignal.timeout(2000) }).then(
    () => true,
    () => false,
  );
}

async function deltaBuild(
  db: Db,
  hardwareId: string,
  state: 'published' | 'failed',
  toLength: number,
  patchLength: number | null,
): Promise<string> {
  const now = new Date().toISOString();
  const from = randomUUID();
  const targetPath = `deltas/${hardwareId}/${from}`;
  await db
    .insertInto('delta_builds')
    .values({
      id: randomUUID(),
      hardware_id: hardwareId,
      from_version: `0.${from.slice(0, 4)}`,
      to_version: '2.0.0',
      from_sha256: randomBytes(32).toString('hex'),
      to_sha256: randomBytes(32).toString('hex'),
      from_length: toLength,
      to_length: toLength,
      target_path: targetPath,
      state,
      progress: 100,
      patch_length: patchLength,
      patch_sha256: patchLength === null ? null : randomBytes(32).toString('hex'),
      blob_key: null,
      build_seconds: null,
      peak_rss_bytes: null,
      error: state === 'failed' ? 'test' : null,
      created_at: now,
      updated_at: now,
    })
    .execute();
  return targetPath;
}

/** A director timestamp of the node stored as the director stores its metadata (older versions kept). */
async function directorTimestamp(
  api: ApiHarness,
  nodeId: string,
  version: number,
  expiresInSeconds: number,
): Promise<void> {
  const store = api.app.get(DirectorMetadataStore, { strict: false });
  expect(await store.ensureAssignmentRow(nodeId)).toBe(true);
  const expiresAt = new Date(Date.now() + expiresInSeconds * 1000).toISOString();
  await store.commitSet(nodeId, 0, [{ role: 'timestamp', version, expiresAt, body: '{}' }], {});
}
