import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '#otter/db';
import { applyDelta } from '#otter/delta';
import { deltaBuildId } from '#otter/delta-builds';
import { JOBS, QUEUES, redisOptions } from '#otter/queue';
import { startApi, type ApiHarness } from '../../api/src/testing/api-harness.js';
import { postRelease, waitFor, waitForBuild } from './testing/delta-test-kit.js';

// The worker as deployed: a separate process (the built dist/), SIGKILLed in the middle of an extent job and
// started again. The build must finish exactly once, with one TUF target and nothing half-done left behind.
//
// The worker runs from <OTTER_TEST_DIST_ROOT>/dist (default: this repository, which `make test` builds first).
// To run against a scratch build, point OTTER_TEST_DIST_ROOT at a directory holding that dist/, a copy of
// package.json (for the #otter/* imports) and a node_modules symlink.
const distRoot = process.env.OTTER_TEST_DIST_ROOT ?? fileURLToPath(new URL('../../..', import.meta.url));
const workerMain = join(distRoot, 'dist/apps/delta-worker/src/main.js');

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const dbs = await testDatabases();
const sqlite = dbs.find((d) => d.config.dialect === 'sqlite')!.config;

let api: ApiHarness;
let admin: string;
let queue: Queue;
let env: Record<string, string>;
const children: ChildProcess[] = [];

/** Starts `node dist/apps/delta-worker/src/main.js` and resolves once it consumes the queue. */
async function startWorker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [workerMain], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(
    'the delta worker to start',
    async () => {
      if (child.exitCode !== null) throw new Error(`delta worker exited ${child.exitCode}:\n${output}`);
      return output.includes('delta-worker started') ? true : undefined;
    },
    20_000,
  );
  return child;
}

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

beforeAll(async () => {
  if (!existsSync(workerMain)) {
    throw new Error(
      `${workerMain} not found: build first (make build), or set OTTER_TEST_DIST_ROOT to a directory with a built dist/`,
    );
  }
  env = {
    DATABASE_URL: `sqlite:${sqlite.dialect === 'sqlite' ? sqlite.file : ''}`,
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    OTTER_ENV: 'test',
    OTTER_LOG_LEVEL: 'info',
    // 256 MiB: extents of ~2.7 MiB here, each a bsdiff of a second or more, so there is an extent job to kill.
    OTTER_DELTA_MEMORY_MB: '256',
    // A dead worker's job is free again 2 s after its last lock renewal, and found by the next stalled check.
    OTTER_DELTA_LOCK_SECONDS: '2',
    OTTER_DELTA_PUBLISH_DELAY_MS: '200',
  };
  api = await startApi({ ...env, OTTER_LOG_LEVEL: 'silent' });
  env.OTTER_DATA_DIR = api.config.dataDir;
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  queue = new Queue(QUEUES.deltaBuild, {
    connection: redisOptions(env.REDIS_URL!),
    prefix: env.OTTER_QUEUE_PREFIX,
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(children.map((c) => kill(c, 'SIGKILL')));
  await queue?.close();
  await api?.close();
  await Promise.all(dbs.map((d) => d.drop()));
});

describe('a delta worker killed mid-build', () => {
  it('is resumed by the next worker: the build completes once, one TUF target, nothing half-done', async () => {
    const hw = 'crashy';
    const source = randomBytes(8 * 1024 * 1024);
    const target = Buffer.from(source);
    // Every block changes a little: every extent is a real bsdiff, none a copy.
    for (let i = 0; i < target.length; i += 3000) target[i] = target[i]! ^ 0xa5;
    const first = await startWorker();
    await postRelease(api.url, admin, hw, '1.0.0', source);
    await postRelease(api.url, admin, hw, '2.0.0', target);
    const buildId = deltaBuildId(hw, sha256(source), sha256(target));

    // Kill it while an extent is being built.
    const victim = await waitFor(
      'an active extent job',
      async () => (await queue.getActive()).find((j) => j.name === JOBS.deltaExtent),
      30_000,
      50,
    );
    await new Promise((r) => setTimeout(r, 300));
    await kill(first, 'SIGKILL');
    const deadPid = first.pid!;

    // Nothing is published while no worker runs, and the killed job still looks active (its lock has yet to expire).
    const targetPath = `deltas/${hw}/1.0.0-2.0.0.delta`;
    expect(await api.repository.signedTarget(targetPath)).toBeUndefined();
    expect(await (await queue.getJob(victim.id!))?.getState()).toBe('active');

    await startWorker();
    const built = await waitForBuild(api.url, admin, hw, '1.0.0', '2.0.0', ['published', 'failed'], 40_000);
    expect(built.state, built.error ?? '').toBe('published');
    // Peak RSS of the worker processes that ran it: the 256 MiB budget on top of the process baseline.
    expect(built.peakRssBytes).toBeGreaterThan(0);
    expect(built.peakRssBytes).toBeLessThan((256 + 256) * 1024 * 1024);

    // The killed job was recovered as stalled and completed; every job of the build completed exactly once.
    const resumed = await queue.getJob(victim.id!);
    expect(await resumed?.getState()).toBe('completed');
    expect(resumed?.stalledCounter).toBeGreaterThanOrEqual(1);
    const jobs = (
      await queue.getJobs(['completed', 'failed', 'active', 'waiting', 'delayed', 'waiting-children'])
    ).filter((j) => j.id?.startsWith(buildId));
    expect(jobs.filter((j) => j.name === JOBS.deltaAssemble)).toHaveLength(1);
    expect(
      jobs.every((j) => j.finishedOn && j.attemptsMade === 1),
      JSON.stringify(jobs.map((j) => [j.id, j.attemptsMade])),
    ).toBe(true);

    // One TUF target; one stored patch (the signed one); no plan or extent left; the dead worker's scratch dir gone.
    const targets = await api.db
      .selectFrom('tuf_targets')
      .select(['path', 'sha256'])
      .where('path', '=', targetPath)
      .execute();
    expect(targets).toHaveLength(1);
    const objects = join(api.config.dataDir, 'blobs', 'objects');
    expect(readdirSync(join(objects, 'deltas', 'sha256'))).toEqual([targets[0]!.sha256]);
    const leftovers = existsSync(join(objects, 'delta-work'))
      ? readdirSync(join(objects, 'delta-work'), { recursive: true, withFileTypes: true }).filter((e) =>
          e.isFile(),
        )
      : [];
    expect(leftovers).toEqual([]);
    const scratch = readdirSync(join(api.config.dataDir, 'delta-work'));
    expect(scratch.some((d) => d.startsWith(`${deadPid}-`))).toBe(false);

    // And the published patch is right.
    const dir = mkdtempSync(join(tmpdir(), 'otter-crash-'));
    writeFileSync(join(dir, 'source'), source);
    const applied = await applyDelta({
      sourceFile: join(dir, 'source'),
      delta: await api.blobs.get(`deltas/sha256/${targets[0]!.sha256}`),
      outFile: join(dir, 'out'),
      expectedTarget: { length: target.length, sha256: sha256(target) },
    });
    expect(applied.sha256).toBe(sha256(target));
  }, 60_000);
});
