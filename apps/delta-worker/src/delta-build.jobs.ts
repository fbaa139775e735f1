import { createReadStream } from 'node:fs';
import { open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { FlowProducer, Job, UnrecoverableError, type Queue } from 'bullmq';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import type { DeltaTargetCustom } from '#otter/contracts';
import {
  applyDelta,
  assembleDelta,
  buildExtent,
  DeltaError,
  planDelta,
  type DeltaPlan,
  type ExtentItem,
} from '#otter/delta';
import {
  DELTA_TARGET_FORMAT,
  DeltaBuildRepository,
  DeltaBuildService,
  deltaBlobKey,
  deltaFlowJobIds,
  deltaEventIds,
  deltaWorkKeys,
  sha256Hex,
  type DeltaBuildRecord,
} from '#otter/delta-builds';
import { OtterError } from '#otter/errors';
import { EventPublisher } from '#otter/events';
import { JOBS, QUEUES, deltaJobOptions, redisOptions } from '#otter/queue';
import { BLOB_STORE, type BlobStore } from '#otter/storage';
import { IMAGE_REPOSITORY, type NewTarget, type TufRepository } from '#otter/tuf';
import { downloadBlob, downloadRange, readBlob, sha256OfFile } from './blob-files.js';
import { WorkDir } from './work-dir.js';

export interface PlanJobData {
  buildId: string;
}

/** One child job: consecutive changed extents, together no larger than one maximum extent. */
export interface ExtentJobData {
  buildId: string;
  planSha256: string;
  items: ExtentItem[];
  sourceBlobKey: string;
  targetBlobKey: string;
}

export interface AssembleJobData {
  buildId: string;
  planSha256: string;
  sourceBlobKey: string;
  /** When the plan job started: build time runs from here to the verified, stored patch. */
  startedAt: number;
}

/** Overall build progress, as shown on every job of the build and in delta_builds. */
const PROGRESS = { planned: 40, built: 90, assembled: 93, verified: 99 } as const;
const PROGRESS_WRITE_EVERY_MS = 500;
/** At most this many extents per child job, so a job stays short enough to show progress and to retry. */
const MAX_ITEMS_PER_JOB = 256;

/**
 * Groups consecutive extents into child jobs of at most `maxBytes` new-image bytes each. A filesystem image
 * with thousands of small scattered changes then costs tens of jobs, not thousands; one big extent is a job
 * of its own. A job builds its extents one at a time, so its memory is that of its largest extent.
 */
export function groupExtents(items: ExtentItem[], maxBytes: number): ExtentItem[][] {
  const groups: ExtentItem[][] = [];
  let current: ExtentItem[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length > 0 && (bytes + item.length > maxBytes || current.length >= MAX_ITEMS_PER_JOB)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.length;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * The delta-build pipeline, one method per job (docs/deltas.md):
 *   plan     fetch both images, plan the delta, store the plan, add the flow (assemble <- extents);
 *   extent   build one changed extent from byte ranges of the images; store the operation;
 *   assemble join the operations into the delta, refuse it if too large, verify it by applying it to the
 *            source, store it under its sha256, queue a publish batch;
 *   publish  sign every verified patch waiting now as TUF targets in one addTargets call.
 * Every step can run again after a crash: each checks what is already done (a published target, a stored
 * operation or patch) first, and a TUF target only ever names a blob that is completely stored.
 */
@Injectable()
export class DeltaBuildJobs {
  private readonly logger = new Logger(DeltaBuildJobs.name);
  private readonly flows: FlowProducer;

  constructor(
    private readonly builds: DeltaBuildRepository,
    private readonly deltas: DeltaBuildService,
    private readonly work: WorkDir,
    @InjectQueue(QUEUES.deltaBuild) private readonly queue: Queue,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
    private readonly publisher: EventPublisher,
  ) {
    this.flows = new FlowProducer({ connection: redisOptions(config.redisUrl), prefix: config.queuePrefix });
  }

  /** After the worker: a plan job still running may be adding its flow. */
  async close(): Promise<void> {
    await this.flows.close();
  }

  /** One job's share of the process's memory budget: concurrent jobs split it. */
  private get jobBudgetBytes(): number {
    return Math.floor(this.config.delta.memoryBudgetBytes / this.config.delta.workerConcurrency);
  }

  async plan(job: Job<PlanJobData>): Promise<{ assembleJobId?: string; extents?: number; skipped?: string }> {
    const build = await this.requireBuild(job.data.buildId);
    const done = await this.alreadyDone(build);
    if (done) return { skipped: done };
    const startedAt = Date.now();
    const source = await this.deltas.signedImage(build.hardwareId, build.from.version);
    const target = await this.deltas.signedImage(build.hardwareId, build.to.version);
    if (source.sha256 !== build.from.sha256 || target.sha256 !== build.to.sha256) {
      throw new UnrecoverableError('the releases no longer name the images this build was queued for');
    }
    const progress = new ProgressReporter(job, this.builds, build, 'building', this.publisher);
    await progress.report(0, true);
    const dir = await this.work.scratch();
    try {
      const sourceFile = join(dir, 'source');
      const targetFile = join(dir, 'target');
      await downloadBlob(this.blobs, source.blobKey, sourceFile, source);
      await downloadBlob(this.blobs, target.blobKey, targetFile, target);
      let plan: DeltaPlan;
      try {
        plan = await planDelta({
          sourceFile,
          targetFile,
          memoryBudgetBytes: this.jobBudgetBytes,
          // planDelta reports its two passes as 0-40%, which is also this build's planning share.
          onProgress: (p) => void progress.report(Math.min(p.percent, PROGRESS.planned)),
        });
      } catch (e) {
        // A budget too small for this pair, or a plan the planner itself rejects, fails the same way each time.
        if (e instanceof DeltaError) throw new UnrecoverableError(`plan: ${e.message}`);
        throw e;
      }
      // Local paths are this worker's; every other job reads byte ranges from the blob store instead.
      const portable: DeltaPlan = {
        ...plan,
        sourceFile: 'source',
        targetFile: 'target',
        items: plan.items.map((item) => ({ ...item, sourceFile: 'source', targetFile: 'target' })),
      };
      const json = JSON.stringify(portable);
      const planSha256 = sha256Hex(json);
      const keys = deltaWorkKeys(build.id, planSha256);
      const ids = deltaFlowJobIds(build.id, planSha256);
      await this.blobs.put(keys.plan, Readable.from([Buffer.from(json)]));

      // Deterministic ids: after a crash between this add and the end of the job, adding again is a no-op.
      if (!(await this.queue.getJob(ids.assemble))) {
        const options = deltaJobOptions(this.config.delta);
        const assemble: AssembleJobData = {
          buildId: build.id,
          planSha256,
          sourceBlobKey: source.blobKey,
          startedAt,
        };
        if (portable.items.length === 0) {
          await this.queue.add(JOBS.deltaAssemble, assemble, { ...options, jobId: ids.assemble });
        } else {
          await this.flows.add({
            name: JOBS.deltaAssemble,
            queueName: QUEUES.deltaBuild,
            data: assemble,
            opts: { ...options, jobId: ids.assemble },
            children: groupExtents(portable.items, portable.limits.maxExtentBytes).map((items) => ({
              name: JOBS.deltaExtent,
              queueName: QUEUES.deltaBuild,
              data: {
                buildId: build.id,
                planSha256,
                items,
                sourceBlobKey: source.blobKey,
                targetBlobKey: target.blobKey,
              } satisfies ExtentJobData,
              // A child that fails for good fails the assembly with it (and marks the build failed).
              opts: { ...options, jobId: ids.extent(items[0]!.id), failParentOnFailure: true },
            })),
          });
        }
      }
      await progress.report(PROGRESS.planned, true);
      this.logger.log(
        { build: build.id, extents: portable.items.length, operations: portable.operations.length },
        'delta planned',
      );
      return { assembleJobId: ids.assemble, extents: portable.items.length };
    } finally {
      await rm(dir, { recursive: true, force: true });
      await this.builds.recordPeakRss(build.id, peakRssBytes());
    }
  }

  async extent(job: Job<ExtentJobData>): Promise<{ built: number; reused: number }> {
    const { buildId, items } = job.data;
    const build = await this.requireBuild(buildId);
    if (build.state === 'published' || build.state === 'too-large') return { built: 0, reused: items.length };
    const keys = deltaWorkKeys(buildId, job.data.planSha256);
    const dir = await this.work.scratch();
    let built = 0;
    try {
      // The images as sparse files holding only the ranges these extents read, at their real offsets.
      const sourceFile = join(dir, 'source');
      const targetFile = join(dir, 'target');
      // Not append mode: Linux ignores the position of a write to a file opened with O_APPEND.
      await writeFile(sourceFile, '', { mode: 0o600 });
      await writeFile(targetFile, '', { mode: 0o600 });
      for (const item of items) {
        // Stored by an earlier run of this job (killed or retried): not built again.
        if (await this.blobs.stat(keys.extent(item.id))) continue;
        const target = await open(targetFile, 'r+');
        try {
          await downloadRange(this.blobs, job.data.targetBlobKey, target, item.targetOffset, item.length);
        } finally {
          await target.close();
        }
        const source = await open(sourceFile, 'r+');
        try {
          if (item.window) {
            const { srcOffset, srcLength } = item.window;
            await downloadRange(this.blobs, job.data.sourceBlobKey, source, srcOffset, srcLength);
          }
        } finally {
          await source.close();
        }
        const operation = await buildExtent(item, { sourceFile, targetFile, workDir: dir });
        await this.blobs.put(keys.extent(item.id), Readable.from([operation]));
        built++;
      }
      await this.reportExtentsDone(job, build.id);
      return { built, reused: items.length - built };
    } finally {
      await rm(dir, { recursive: true, force: true });
      await this.builds.recordPeakRss(build.id, peakRssBytes());
    }
  }

  async assemble(job: Job<AssembleJobData>): Promise<{ state: string; patchLength?: number }> {
    const build = await this.requireBuild(job.data.buildId);
    const done = await this.alreadyDone(build);
    if (done) return { state: done };
    if (build.state === 'verifying' && build.blobKey && (await this.blobs.stat(build.blobKey))) {
      // Verified and stored by an earlier run that died before it finished: only the publish is missing.
      await this.deltas.schedulePublish();
      return { state: 'verifying', patchLength: build.patchLength ?? undefined };
    }
    const keys = deltaWorkKeys(build.id, job.data.planSha256);
    const plan = JSON.parse((await readBlob(this.blobs, keys.plan)).toString('utf8')) as DeltaPlan;
    const progress = new ProgressReporter(job, this.builds, build, 'building', this.publisher);
    const dir = await this.work.scratch();
    try {
      const deltaFile = join(dir, 'delta');
      const assembled = await assembleDelta(
        plan,
        (item) => readBlob(this.blobs, keys.extent(item.id)),
        deltaFile,
      );
      const buildSeconds = (Date.now() - job.data.startedAt) / 1000;
      const limit = Math.floor(this.config.delta.maxFraction * build.to.length);
      if (assembled.patchLength > limit) {
        const reason =
          `patch of ${assembled.patchLength} bytes is ${percent(assembled.patchLength, build.to.length)} of the ` +
          `${build.to.length}-byte image; the limit is ${percent(this.config.delta.maxFraction, 1)}`;
        await this.builds.markTooLarge(build.id, {
          patchLength: assembled.patchLength,
          buildSeconds,
          peakRssBytes: peakRssBytes(),
          reason,
        });
        await job.updateProgress(100);
        await this.publisher.publish({ kind: 'delta.build.failed', ...deltaEventIds(build), reason });
        await this.removeWork(keys, plan);
        this.logger.log(
          { build: build.id, patchLength: assembled.patchLength },
          'delta too large: not published',
        );
        return { state: 'too-large', patchLength: assembled.patchLength };
      }

      progress.state = 'verifying';
      await progress.report(PROGRESS.assembled, true);
      const sourceFile = join(dir, 'source');
      await downloadBlob(this.blobs, job.data.sourceBlobKey, sourceFile, build.from);
      const result = await applyDelta({
        sourceFile,
        delta: createReadStream(deltaFile, { highWaterMark: 1024 * 1024 }),
        outFile: join(dir, 'result'),
        expectedTarget: build.to,
        workDir: dir,
      }).catch((e: unknown) => {
        // Builds are deterministic: a patch that does not reproduce its target will not on a retry either.
        throw new UnrecoverableError(`verify: the delta does not reproduce the target: ${describe(e)}`);
      });
      if (result.sha256 !== build.to.sha256 || result.length !== build.to.length) {
        throw new UnrecoverableError('verify: the delta does not reproduce the target');
      }
      await rm(join(dir, 'result'), { force: true });
      await rm(sourceFile, { force: true });

      const patchSha256 = await sha256OfFile(deltaFile);
      const blobKey = deltaBlobKey(patchSha256);
      if (!(await this.blobs.stat(blobKey))) {
        // put is atomic: the key shows the patch only once every byte is stored and matches its hash.
        await this.blobs.put(blobKey, createReadStream(deltaFile, { highWaterMark: 1024 * 1024 }), {
          expectedSha256: patchSha256,
        });
      }
      await this.builds.markStored(build.id, {
        length: assembled.patchLength,
        sha256: patchSha256,
        blobKey,
        buildSeconds,
        peakRssBytes: peakRssBytes(),
      });
      await job.updateProgress(PROGRESS.verified);
      await this.removeWork(keys, plan);
      await this.deltas.schedulePublish();
      this.logger.log(
        {
          build: build.id,
          patchLength: assembled.patchLength,
          buildSeconds,
          operations: assembled.operations,
        },
        'delta verified and stored',
      );
      return { state: 'verifying', patchLength: assembled.patchLength };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Publishes every verified patch waiting now in one addTargets call: one new snapshot and timestamp for
   * the whole batch. A patch whose target exists already (an earlier run published it) is only recorded.
   */
  async publish(): Promise<{ published: string[] }> {
    const published: string[] = [];
    for (let round = 0; ; round++) {
      const batch: Array<{ build: DeltaBuildRecord; target: NewTarget }> = [];
      const paths = new Set<string>();
      for (const build of await this.builds.readyToPublish()) {
        if (await this.alreadyDone(build)) continue;
        if (paths.has(build.targetPath) || build.patchLength === null || !build.patchSha256 || !build.blobKey)
          continue;
        if (!(await this.blobs.stat(build.blobKey))) {
          const reason = 'publish: the stored patch is missing; request the delta again';
          await this.builds.markFailed(build.id, reason);
          await this.publisher.publish({ kind: 'delta.build.failed', ...deltaEventIds(build), reason });
          continue;
        }
        const custom: DeltaTargetCustom = {
          delta: { format: DELTA_TARGET_FORMAT, from: build.from, to: build.to },
        };
        paths.add(build.targetPath);
        batch.push({
          build,
          target: {
            path: build.targetPath,
            length: build.patchLength,
            sha256: build.patchSha256,
            blobKey: build.blobKey,
            custom: { ...custom },
          },
        });
      }
      if (batch.length === 0) break;
      try {
        await this.repository.addTargets(batch.map((b) => b.target));
      } catch (e) {
        // Another publish job signed one of these meanwhile: the next round records it and signs the rest.
        if (e instanceof OtterError && e.code === 'TUF_CONFLICT' && round < 3) continue;
        for (const { build } of batch) await this.builds.noteError(build.id, `publish: ${describe(e)}`);
        throw e;
      }
      for (const { build, target } of batch) {
        await this.builds.markPublished(build.id, {
          length: target.length,
          sha256: target.sha256,
          blobKey: target.blobKey,
        });
        published.push(target.path);
      }
      await this.publisher.publishAll(
        batch.map(({ build, target }) => ({
          kind: 'delta.build.published' as const,
          ...deltaEventIds(build),
          patchLength: target.length,
          fullLength: build.to.length,
        })),
      );
      this.logger.log({ targets: published }, 'deltas published');
      break;
    }
    // A patch stored while this batch was signed missed it (its publish job id was this one): schedule the next.
    if ((await this.builds.readyToPublish()).length > 0) await this.deltas.schedulePublish();
    return { published };
  }

  /** A build whose job failed for good shows the reason; a failed publish leaves the patch waiting for a retry. */
  async recordFailure(job: Job, error: Error): Promise<void> {
    const buildId = (job.data as { buildId?: string }).buildId;
    const stages: Record<string, string> = {
      [JOBS.deltaPlan]: 'plan',
      [JOBS.deltaExtent]: 'extent',
      [JOBS.deltaAssemble]: 'assemble',
    };
    const stage = stages[job.name];
    if (!buildId || !stage) return;
    const where = job.name === JOBS.deltaExtent ? ` ${(job.data as ExtentJobData).items[0]?.id}` : '';
    const reason = `${stage}${where}: ${error.message} (after ${job.attemptsMade} attempt${job.attemptsMade === 1 ? '' : 's'})`;
    await this.builds.markFailed(buildId, reason);
    this.logger.warn({ build: buildId, job: job.id, reason }, 'delta build failed');
    const build = await this.builds.get(buildId);
    if (build) await this.publisher.publish({ kind: 'delta.build.failed', ...deltaEventIds(build), reason });
  }

  private async requireBuild(id: string): Promise<DeltaBuildRecord> {
    const build = await this.builds.get(id);
    if (!build) throw new UnrecoverableError(`no delta build ${id}`);
    return build;
  }

  /** 'published' or 'too-large' when nothing is left to do; a target already signed counts as published. */
  private async alreadyDone(build: DeltaBuildRecord): Promise<string | undefined> {
    if (build.state === 'published' || build.state === 'too-large') return build.state;
    const signed = await this.repository.signedTarget(build.targetPath);
    if (!signed) return undefined;
    const served = await this.repository.target(build.targetPath, signed.sha256);
    await this.builds.markPublished(build.id, {
      length: signed.length,
      sha256: signed.sha256,
      blobKey: served.blobKey,
    });
    return 'published';
  }

  private async reportExtentsDone(job: Job<ExtentJobData>, buildId: string): Promise<void> {
    let share = 1;
    if (job.parent?.id) {
      const parent = await Job.fromId(this.queue, job.parent.id);
      const counts = await parent?.getDependenciesCount({ processed: true, unprocessed: true });
      // This job is still unprocessed until it returns: count it as done.
      const total = (counts?.processed ?? 0) + (counts?.unprocessed ?? 0);
      if (total > 0) share = Math.min(1, ((counts?.processed ?? 0) + 1) / total);
    }
    const overall = PROGRESS.planned + (PROGRESS.built - PROGRESS.planned) * share;
    await job.updateProgress(Math.floor(overall));
    await this.builds.advance(buildId, 'building', overall);
  }

  private async removeWork(keys: ReturnType<typeof deltaWorkKeys>, plan: DeltaPlan): Promise<void> {
    for (const item of plan.items) await this.blobs.delete(keys.extent(item.id));
    await this.blobs.delete(keys.plan);
  }
}

/** Writes build progress to the job and the database, at most every 500 ms and never backwards. */
class ProgressReporter {
  private last = -1;
  private lastAt = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly job: Job,
    private readonly builds: DeltaBuildRepository,
    private readonly build: DeltaBuildRecord,
    public state: 'building' | 'verifying',
    private readonly publisher: EventPublisher,
  ) {}

  report(value: number, force = false): Promise<void> {
    const rounded = Math.floor(value);
    if (!force && (rounded <= this.last || Date.now() - this.lastAt < PROGRESS_WRITE_EVERY_MS))
      return this.chain;
    this.last = Math.max(this.last, rounded);
    this.lastAt = Date.now();
    const state = this.state;
    this.chain = this.chain
      .then(async () => {
        await this.job.updateProgress(rounded);
        await this.builds.advance(this.build.id, state, rounded);
        // Throttled with the database write above: at most one progress event per build every 500 ms.
        await this.publisher.publish({
          kind: 'delta.build.progress',
          ...deltaEventIds(this.build),
          stage: state,
          percent: rounded,
        });
      })
      .catch(() => undefined);
    return this.chain;
  }
}

/** The process's peak resident set so far (ru_maxrss, KiB on Linux). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function percent(part: number, whole: number): string {
  return `${Math.round((part / whole) * 1000) / 10}%`;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
