import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { INestApplicationContext } from '@nestjs/common';
import { Queue } from 'bullmq';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import type { DeltaBuildDto, DeltaTargetCustom } from '#otter/contracts';
import { testDatabases } from '#otter/db';
import { applyDelta } from '#otter/delta';
import { DeltaBuildRepository, DeltaBuildService, deltaBuildId, deltaPublishJob } from '#otter/delta-builds';
import { JOBS, QUEUES, redisOptions } from '#otter/queue';
import { startTestS3Server, type TestS3Server } from '#otter/storage';
import { startApi, type ApiHarness } from '../../api/src/testing/api-harness.js';
import { createDeltaWorker } from './create-delta-worker.js';
import { DeltaBuildJobs } from './delta-build.jobs.js';
import { imagePair, listDeltas, postRelease, waitForBuild } from './testing/delta-test-kit.js';

// The delta worker in-process against the real api (releases through HTTP, the release hook), real Redis,
// PostgreSQL, and the filesystem or an S3 blob store. A tuf-js client is the judge of what got published.

const dbs: Array<{ drop: () => Promise<void> }> = [];
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

/** A fresh PostgreSQL schema (the api's bootstrap admin token is made only in an empty database). */
async function freshPostgresUrl(): Promise<string> {
  const fresh = await testDatabases();
  dbs.push(...fresh);
  const pg = fresh.find((d) => d.config.dialect === 'postgres')!.config;
  return pg.dialect === 'postgres' ? pg.url : '';
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Stack {
  api: ApiHarness;
  worker: INestApplicationContext;
  admin: string;
  queue: Queue;
  s3?: TestS3Server;
  close(): Promise<void>;
}

/** api + worker sharing one data dir (keys, fs blobs), database, Redis prefix and blob store. */
async function startStack(blobStore: 'fs' | 's3', extra: Record<string, string> = {}): Promise<Stack> {
  const s3 =
    blobStore === 's3' ? await startTestS3Server(`otter-${randomBytes(4).toString('hex')}`) : undefined;
  const env: Record<string, string> = {
    DATABASE_URL: await freshPostgresUrl(),
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    // 64 MiB: extents of ~0.8 MiB, so even these small images fan out over several extent jobs.
    OTTER_DELTA_MEMORY_MB: '64',
    OTTER_DELTA_PUBLISH_DELAY_MS: '200',
    OTTER_DELTA_ATTEMPTS: '2',
    OTTER_DELTA_BACKOFF_MS: '100',
    ...(s3 && {
      OTTER_BLOB_STORE: 's3',
      OTTER_S3_ENDPOINT: s3.config.endpoint!,
      OTTER_S3_BUCKET: s3.config.bucket,
      OTTER_S3_ACCESS_KEY_ID: s3.config.accessKeyId,
      OTTER_S3_SECRET_ACCESS_KEY: s3.config.secretAccessKey,
    }),
    ...extra,
  };
  const api = await startApi(env);
  const worker = await createDeltaWorker(
    loadConfig({ ...env, OTTER_DATA_DIR: api.config.dataDir, OTTER_LOG_LEVEL: 'silent', OTTER_ENV: 'test' }),
  );
  const queue = new Queue(QUEUES.deltaBuild, {
    connection: redisOptions(env.REDIS_URL!),
    prefix: env.OTTER_QUEUE_PREFIX,
  });
  const admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  return {
    api,
    worker,
    admin,
    queue,
    s3,
    async close() {
      await worker.close();
      await api.close();
      await queue.close();
      await s3?.close();
    },
  };
}

/** Keys left under delta-work/ in the blob store (the plan and built extents of unfinished builds). */
async function workBlobs(stack: Stack): Promise<string[]> {
  if (!stack.s3) {
    const dir = join(stack.api.config.dataDir, 'blobs', 'objects', 'delta-work');
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => e.name);
  }
  const c = stack.s3.config;
  const client = new S3Client({
    endpoint: c.endpoint,
    region: c.region,
    forcePathStyle: true,
    credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
  });
  try {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: c.bucket, Prefix: 'delta-work/' }));
    return (listed.Contents ?? []).map((o) => o.Key!);
  } finally {
    client.destroy();
  }
}

async function tufClient(api: ApiHarness): Promise<{ updater: Updater; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'otter-delta-client-'));
  writeFileSync(
    join(dir, 'root.json'),
    await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text(),
  );
  const updater = new Updater({
    metadataDir: dir,
    metadataBaseUrl: `${api.url}/tuf/image/metadata`,
    targetDir: dir,
    targetBaseUrl: `${api.url}/tuf/image/targets`,
  });
  await updater.refresh();
  return { updater, dir };
}

async function jobsOf(
  queue: Queue,
  buildId: string,
  name: string,
): Promise<Array<{ id: string; attemptsMade: number }>> {
  const jobs = await queue.getJobs([
    'completed',
    'failed',
    'active',
    'waiting',
    'delayed',
    'waiting-children',
  ]);
  return jobs
    .filter((j) => j.name === name && j.id?.startsWith(buildId))
    .map((j) => ({ id: j.id!, attemptsMade: j.attemptsMade }));
}

describe.each(['fs', 's3'] as const)('delta worker with the %s blob store', (blobStore) => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(blobStore);
  });
  afterAll(async () => stack?.close());

  it('builds, verifies and publishes the delta of a new release; tuf-js fetches it and it applies', async () => {
    const { api, admin } = stack;
    const hw = `board-${blobStore}`;
    const { source, target } = imagePair(4 * 1024 * 1024);
    await postRelease(api.url, admin, hw, '1.0.0', source);
    await postRelease(api.url, admin, hw, '2.0.0', target);

    const built = await waitForBuild(api.url, admin, hw, '1.0.0', '2.0.0', [
      'published',
      'failed',
      'too-large',
    ]);
    expect(built, built.error ?? '').toMatchObject({
      state: 'published',
      progress: 100,
      targetPath: `deltas/${hw}/1.0.0-2.0.0.delta`,
      from: { version: '1.0.0', sha256: sha256(source), length: source.length },
      to: { version: '2.0.0', sha256: sha256(target), length: target.length },
      error: null,
    });
    expect(built.patchLength).toBeGreaterThan(0);
    expect(built.saving).toBeGreaterThan(0.5);
    expect(built.buildSeconds).toBeGreaterThan(0);
    expect(built.peakRssBytes).toBeGreaterThan(50 * 1024 * 1024);

    // Fanned out: one job per changed extent, assembled by one parent.
    const buildId = deltaBuildId(hw, sha256(source), sha256(target));
    expect((await jobsOf(stack.queue, buildId, JOBS.deltaExtent)).length).toBeGreaterThan(1);
    expect(await jobsOf(stack.queue, buildId, JOBS.deltaAssemble)).toHaveLength(1);

    // A stock TUF client sees the target with its custom metadata, downloads it verified, and it applies.
    const { updater, dir } = await tufClient(api);
    const info = await updater.getTargetInfo(built.targetPath);
    expect(info?.length).toBe(built.patchLength);
    expect(info?.custom as unknown as DeltaTargetCustom).toEqual({
      delta: {
        format: 'otter-delta-v1',
        from: { version: '1.0.0', sha256: sha256(source), length: source.length },
        to: { version: '2.0.0', sha256: sha256(target), length: target.length },
      },
    });
    const patchFile = await updater.downloadTarget(info!, join(dir, 'patch.delta'));
    const sourceFile = join(dir, 'current.img');
    writeFileSync(sourceFile, source);
    const out = join(dir, 'next.img');
    const applied = await applyDelta({
      sourceFile,
      delta: createReadStream(patchFile),
      outFile: out,
      expectedTarget: { length: target.length, sha256: sha256(target) },
    });
    expect(applied.sha256).toBe(sha256(target));
    expect(readFileSync(out).equals(target)).toBe(true);

    // Intermediate results (plan, built extents) are gone; the patch itself is stored under its hash.
    const row = await stack.worker.get(DeltaBuildRepository).get(buildId);
    expect(row?.blobKey).toBe(`deltas/sha256/${info!.hashes.sha256}`);
    expect(await api.blobs.stat(row!.blobKey!)).toEqual({ length: built.patchLength });
    expect(await workBlobs(stack)).toEqual([]);
  });
});

describe('delta worker: triggers, limits and failures', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack('fs');
  });
  afterAll(async () => stack?.close());

  const request = (hardware: string, from: string, to: string): Promise<Response> =>
    fetch(`${stack.api.url}/api/v1/deltas`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hardware, from, to }),
    });

  it('builds a pair once however often it is triggered: one row, one job of each kind, one target', async () => {
    const { api, admin, queue } = stack;
    const hw = 'twice';
    const { source, target } = imagePair(2 * 1024 * 1024);
    await postRelease(api.url, admin, hw, '1.0.0', source);
    await postRelease(api.url, admin, hw, '2.0.0', target); // the release hook queues the build
    const racing = await Promise.all([request(hw, '1.0.0', '2.0.0'), request(hw, '1.0.0', '2.0.0')]);
    const ids = await Promise.all(racing.map(async (r) => ((await r.json()) as DeltaBuildDto).id));
    expect(racing.map((r) => r.status)).toEqual([202, 202]);
    const buildId = deltaBuildId(hw, sha256(source), sha256(target));
    expect(ids).toEqual([buildId, buildId]);

    const built = await waitForBuild(api.url, admin, hw, '1.0.0', '2.0.0', ['published', 'failed']);
    expect(built.state, built.error ?? '').toBe('published');
    const plan = await queue.getJob(buildId);
    const finishedOn = plan?.finishedOn;
    expect(plan?.attemptsMade).toBe(1);

    // Asked again after publication: the same build, no new job.
    const again = await request(hw, '1.0.0', '2.0.0');
    expect(again.status).toBe(202);
    expect(((await again.json()) as DeltaBuildDto).state).toBe('published');
    expect((await queue.getJob(buildId))?.finishedOn).toBe(finishedOn);

    expect(await listDeltas(api.url, admin, hw)).toHaveLength(1);
    expect(await jobsOf(queue, buildId, JOBS.deltaPlan)).toEqual([{ id: buildId, attemptsMade: 1 }]);
    expect(await jobsOf(queue, buildId, JOBS.deltaAssemble)).toEqual([
      expect.objectContaining({ attemptsMade: 1 }),
    ]);
    const extents = await jobsOf(queue, buildId, JOBS.deltaExtent);
    expect(extents.every((j) => j.attemptsMade === 1)).toBe(true);
    const targets = await api.db
      .selectFrom('tuf_targets')
      .select('path')
      .where('path', '=', built.targetPath)
      .execute();
    expect(targets).toHaveLength(1);
  });

  it('a release published while Redis is away still publishes; its build waits queued and the sweep queues it', async () => {
    const { api, admin } = stack;
    // A second api replica whose Redis is unreachable, on the same database and data dir.
    const cut = await startApi({
      DATABASE_URL: api.config.database.dialect === 'postgres' ? api.config.database.url : '',
      OTTER_DATA_DIR: api.config.dataDir,
      REDIS_URL: 'redis://127.0.0.1:1',
      OTTER_QUEUE_PREFIX: api.config.queuePrefix,
    });
    const hw = 'offline';
    const { source, target } = imagePair(1024 * 1024);
    try {
      await postRelease(cut.url, admin, hw, '1.0.0', source);
      const started = Date.now();
      await postRelease(cut.url, admin, hw, '2.0.0', target);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await cut.close();
    }
    const [waiting] = await listDeltas(api.url, admin, hw);
    expect(waiting?.state).toBe('queued');
    expect(await stack.queue.getJob(waiting!.id)).toBeUndefined();

    // The repeatable sweep (every minute; here one run of it) finds the build and queues it; it then builds.
    await stack.queue.add(JOBS.deltaSweep, {});
    const built = await waitForBuild(api.url, admin, hw, '1.0.0', '2.0.0', ['published', 'failed']);
    expect(built.state, built.error ?? '').toBe('published');
  });

  it('does not publish a patch larger than the limit: an incompressible new image is too-large', async () => {
    const { api, admin } = stack;
    const hw = 'noise';
    await postRelease(api.url, admin, hw, '1.0.0', randomBytes(512 * 1024));
    await postRelease(api.url, admin, hw, '2.0.0', randomBytes(512 * 1024));
    const built = await waitForBuild(api.url, admin, hw, '1.0.0', '2.0.0', [
      'too-large',
      'published',
      'failed',
    ]);
    expect(built.state, built.error ?? '').toBe('too-large');
    expect(built.error).toMatch(/limit is 60%/);
    expect(built.patchLength).toBeGreaterThan(0.6 * 512 * 1024);
    expect(await api.repository.signedTarget(built.targetPath)).toBeUndefined();
    const row = await stack.worker.get(DeltaBuildRepository).get(built.id);
    expect(row?.blobKey).toBeNull();
  });

  it('marks a build failed with its reason once retries are exhausted (the source image is gone)', async () => {
    const { api, admin, queue } = stack;
    const hw = 'broken';
    const { source, target } = imagePair(1024 * 1024);
    const v1 = await postRelease(api.url, admin, hw, '1.0.0', source);
    const sourceKey = (await api.repository.target(v1.targetPath, v1.sha256)).blobKey;
    await api.blobs.delete(sourceKey);
    await postRelease(api.url, admin, hw, '2.0.0', target);
    const built = await waitForBuild(api.url, admin, hw, '1.0.0', '2.0.0', ['failed', 'published']);
    expect(built.state).toBe('failed');
    expect(built.error).toMatch(/^plan: .*blob not found.*\(after 2 attempts\)$/);
    const job = await queue.getJob(built.id);
    expect(await job?.getState()).toBe('failed');
    expect(job?.attemptsMade).toBe(2);
    expect(await api.repository.signedTarget(built.targetPath)).toBeUndefined();

    // Once the cause is fixed, asking for the pair again starts the build over (the failed jobs are dropped).
    await api.blobs.put(sourceKey, Readable.from([source]));
    const again = await request(hw, '1.0.0', '2.0.0');
    expect(again.status).toBe(202);
    expect(((await again.json()) as DeltaBuildDto).state).toBe('queued');
    const rebuilt = await waitForBuild(api.url, admin, hw, '1.0.0', '2.0.0', ['published', 'failed']);
    expect(rebuilt).toMatchObject({ id: built.id, state: 'published', error: null });
  });

  it('publishes every verified patch waiting at that moment in one addTargets: one snapshot, one timestamp', async () => {
    const { api } = stack;
    const jobs = stack.worker.get(DeltaBuildJobs);
    const builds = stack.worker.get(DeltaBuildRepository);
    const service = stack.worker.get(DeltaBuildService);
    // Two verified patches stored and waiting (their real builds are the tests above; here only publishing).
    for (const to of ['2.0.0', '3.0.0']) {
      const patch = randomBytes(1000);
      const stored = await api.blobs.put(`deltas/sha256/${sha256(patch)}`, Readable.from([patch]));
      const id = `delta-batch-${to}`;
      await builds.insertIfAbsent({
        id,
        hardwareId: 'batch',
        from: { version: '1.0.0', sha256: sha256(Buffer.from('a')), length: 1 },
        to: { version: to, sha256: sha256(Buffer.from(to)), length: 5000 },
        targetPath: `deltas/batch/1.0.0-${to}.delta`,
      });
      await builds.markStored(id, {
        length: stored.length,
        sha256: stored.sha256,
        blobKey: `deltas/sha256/${stored.sha256}`,
        buildSeconds: 1,
        peakRssBytes: 1,
      });
    }
    const versions = async (role: string): Promise<number> =>
      (await api.db.selectFrom('tuf_metadata').select('version').where('role', '=', role).execute()).length;
    const before = { snapshot: await versions('snapshot'), timestamp: await versions('timestamp') };
    const result = await jobs.publish();
    expect(result.published.sort()).toEqual([
      'deltas/batch/1.0.0-2.0.0.delta',
      'deltas/batch/1.0.0-3.0.0.delta',
    ]);
    expect(await versions('snapshot')).toBe(before.snapshot + 1);
    expect(await versions('timestamp')).toBe(before.timestamp + 1);
    expect((await builds.get('delta-batch-3.0.0'))?.state).toBe('published');

    // Publishing again is a no-op; and patches verified close together share one debounced publish job.
    expect((await jobs.publish()).published).toEqual([]);
    const since = Date.now();
    const now = Math.floor(since / 200) * 200 + 250; // two moments inside one 200 ms bucket
    await service.schedulePublish(now);
    await service.schedulePublish(now + 100);
    const publishJobs = (await stack.queue.getJobs(['delayed', 'waiting', 'active', 'completed'])).filter(
      (j) => j.name === JOBS.deltaPublish && j.timestamp >= since,
    );
    expect(publishJobs.map((j) => j.id)).toEqual([deltaPublishJob(now, 200).jobId]);
  });
});
