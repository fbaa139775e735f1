import { setTimeout as sleep } from 'node:timers/promises';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import semver from 'semver';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import {
  HARDWARE_ID_PATTERN,
  type DeltaBuildDto,
  type DeltaRequest,
  type DownloadReport,
  type NodeDownloadDto,
  type ReleaseDto,
  type SavingsDto,
} from '#otter/contracts';
import { afterCommit, inAmbientTransaction } from '#otter/db';
import { OtterError, ValidationError } from '#otter/errors';
import { JOBS, QUEUES, deltaJobOptions, deltaPublishDelayMs } from '#otter/queue';
import { ReleaseError, ReleaseService, targetPathOf } from '#otter/releases';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';
import { EventPublisher } from '#otter/events';
import { deltaEventIds } from './delta-build-events.js';
import { deltaBuildId, deltaPublishJob, deltaTargetPath } from './delta-build-names.js';
import { DeltaBuildRepository, type DeltaBuildRecord, type ImageRef } from './delta-build.repository.js';
import { DeltaMetrics } from './delta-metrics.js';
import { DownloadRepository } from './download.repository.js';

/** A release image as the image repository signs it, and where its bytes are. */
export interface SignedImage extends ImageRef {
  targetPath: string;
  blobKey: string;
}

/** How long a request waits for Redis to take a job before leaving it to the sweep (docs/deltas.md). */
const ENQUEUE_WAIT_MS = 5_000;
/** A TUF path segment is at most 128 characters: `{from}-{to}.delta` must fit. */
const MAX_TARGET_NAME = 128;

/**
 * Delta builds as the rest of Otter sees them: request one (a release engineer, or a new release), list them,
 * and the bytes nodes save. The work itself is apps/delta-worker's; this only records a build and queues it.
 */
@Injectable()
export class DeltaBuildService {
  private readonly logger = new Logger(DeltaBuildService.name);

  constructor(
    private readonly builds: DeltaBuildRepository,
    private readonly downloads: DownloadRepository,
    private readonly metrics: DeltaMetrics,
    private readonly releases: ReleaseService,
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    @InjectQueue(QUEUES.deltaBuild) private readonly queue: Queue,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
    private readonly publisher: EventPublisher,
  ) {}

  /** A release engineer's request; idempotent: the same pair returns the existing build. */
  async request(input: DeltaRequest): Promise<DeltaBuildDto> {
    if (!HARDWARE_ID_PATTERN.test(input.hardware))
      throw new ValidationError('hardware: not a valid hardware id');
    for (const field of ['from', 'to'] as const) {
      if (semver.valid(input[field]) !== input[field]) {
        throw new ValidationError(`${field}: must be a release version such as 2.4.0`, { field });
      }
    }
    if (input.from === input.to) throw new ValidationError('from and to must be different releases');
    const build = await this.ensureBuild(input.hardware, input.from, input.to);
    // Answer once the job is in Redis, or after a bounded wait: the build is recorded either way. In an audited
    // request the job is queued after the commit (afterCommit), and the request's transaction waits for that.
    if (!inAmbientTransaction())
      await Promise.race([build.queued, sleep(ENQUEUE_WAIT_MS, false, { ref: false })]);
    return toDto(build.record);
  }

  async list(hardware?: string): Promise<DeltaBuildDto[]> {
    return (await this.builds.list(hardware)).map(toDto);
  }

  async get(id: string): Promise<DeltaBuildDto | undefined> {
    const record = await this.builds.get(id);
    return record && toDto(record);
  }

  /**
   * A new release: deltas to it from the versions the hardware's active nodes run (most common first), then
   * from its N most recent earlier releases; each source once. A source that cannot be built is logged and
   * skipped; the release itself never fails because of a delta.
   */
  async planForRelease(release: ReleaseDto): Promise<DeltaBuildDto[]> {
    const fleet = (await this.builds.runningVersions(release.hardwareId)).map((v) => v.version);
    const recent = (await this.releases.list(release.hardwareId))
      .filter((r) => r.id !== release.id && r.version !== release.version)
      .slice(0, this.config.delta.fromRecent)
      .map((r) => r.version);
    const sources = [...new Set([...fleet, ...recent])].filter((v) => v !== release.version);
    const planned: DeltaBuildDto[] = [];
    for (const from of sources) {
      try {
        // Recorded now; queued in the background: a release never waits for Redis (the sweep covers an outage).
        planned.push(toDto((await this.ensureBuild(release.hardwareId, from, release.version)).record));
      } catch (e) {
        this.logger.warn(
          { hardware: release.hardwareId, from, to: release.version, err: describe(e) },
          'no delta build for this source',
        );
      }
    }
    return planned;
  }

  /** The image a version of a hardware id names in the image repository, or RELEASE_NOT_FOUND. */
  async signedImage(hardware: string, version: string): Promise<SignedImage> {
    const targetPath = targetPathOf(hardware, version);
    const signed = await this.repository.signedTarget(targetPath);
    if (!signed) {
      throw new ReleaseError('RELEASE_NOT_FOUND', `no release ${version} for hardware ${hardware}`, {
        hardware,
        version,
      });
    }
    const served = await this.repository.target(targetPath, signed.sha256);
    return { version, sha256: signed.sha256, length: signed.length, targetPath, blobKey: served.blobKey };
  }

  /** Records the build of the pair unless it exists; `queued` settles once its job is added (or given up on). */
  private async ensureBuild(
    hardware: string,
    fromVersion: string,
    toVersion: string,
  ): Promise<{ record: DeltaBuildRecord; queued: Promise<boolean> }> {
    const targetPath = deltaTargetPath(hardware, fromVersion, toVersion);
    if (targetPath.split('/').at(-1)!.length > MAX_TARGET_NAME) {
      throw new ValidationError(`the delta's target name would exceed ${MAX_TARGET_NAME} characters`);
    }
    const from = await this.signedImage(hardware, fromVersion);
    const to = await this.signedImage(hardware, toVersion);
    if (from.sha256 === to.sha256) {
      throw new ValidationError(
        `releases ${fromVersion} and ${toVersion} are the same image: nothing to build`,
      );
    }
    const image = ({ version, sha256, length }: SignedImage): ImageRef => ({ version, sha256, length });
    const id = deltaBuildId(hardware, from.sha256, to.sha256);
    const { record, created } = await this.builds.insertIfAbsent({
      id,
      hardwareId: hardware,
      from: image(from),
      to: image(to),
      targetPath,
    });
    let queued: Promise<boolean> = Promise.resolve(false);
    // A worker must not take the job before the row it builds is committed.
    if (created) {
      this.logger.log({ build: id, targetPath }, 'delta build queued');
      queued = afterCommit(async () => {
        await this.publisher.publish({ kind: 'delta.build.queued', ...deltaEventIds(record) });
        return this.enqueue(id);
      }, false);
    } else if (record.state === 'failed' && (await this.builds.requeueFailed(id))) {
      // The failed jobs keep their ids (and so would swallow a new add): drop them, then start over.
      this.logger.log({ build: id, targetPath }, 'failed delta build queued again');
      queued = afterCommit(async () => {
        await this.publisher.publish({ kind: 'delta.build.queued', ...deltaEventIds(record) });
        await this.dropJobs(id);
        return this.enqueue(id);
      }, false);
    } else if (record.state === 'queued') {
      queued = afterCommit(() => this.enqueue(id), false);
    }
    queued = queued.catch((e: unknown) => {
      this.logger.warn({ build: id, err: describe(e) }, 'could not queue the delta build');
      return false;
    });
    return { record: (await this.builds.get(id))!, queued };
  }

  /**
   * Adds the build's plan job; a no-op when a job with its id exists. Waits a bounded time: with Redis away the
   * build stays `queued` in the database and the worker's sweep queues it later.
   */
  async enqueue(buildId: string): Promise<boolean> {
    const tuning = this.config.delta;
    const added = this.queue
      .add(JOBS.deltaPlan, { buildId }, { ...deltaJobOptions(tuning), jobId: buildId })
      .then(() => true);
    const outcome = await Promise.race([
      added.catch((e: unknown) => e),
      sleep(ENQUEUE_WAIT_MS, 'timeout' as const, { ref: false }),
    ]);
    if (outcome === true) return true;
    added.catch(() => undefined);
    this.logger.warn(
      { build: buildId, err: outcome === 'timeout' ? 'redis did not answer' : describe(outcome) },
      'could not queue the delta build yet; the delta-worker sweep will',
    );
    return false;
  }

  /** Schedules the publish batch that the patches verified around `now` share (one job per time bucket). */
  async schedulePublish(now = Date.now()): Promise<void> {
    const tuning = this.config.delta;
    const { jobId, delay } = deltaPublishJob(now, deltaPublishDelayMs(tuning));
    await this.queue.add(JOBS.deltaPublish, {}, { ...deltaJobOptions(tuning), jobId, delay });
  }

  /** Queues what may have been missed: builds still `queued` and verified patches not yet published. */
  async requeuePending(): Promise<{ queued: number; toPublish: number }> {
    const queued = await this.builds.inState('queued');
    for (const build of queued) {
      // A failed build asked for again whose old jobs could not be dropped then: drop them now.
      const state = await (await this.queue.getJob(build.id))?.getState();
      if (state === 'failed' || state === 'completed') await this.dropJobs(build.id);
      await this.enqueue(build.id);
    }
    const ready = await this.builds.readyToPublish();
    if (ready.length > 0) await this.schedulePublish();
    return { queued: queued.length, toPublish: ready.length };
  }

  async recordDownload(node: { id: string; hardwareId: string }, report: DownloadReport): Promise<void> {
    const [family, hardware] = report.targetPath.split('/');
    if (family !== (report.method === 'delta' ? 'deltas' : 'images')) {
      throw new ValidationError(
        `targetPath: a ${report.method} download is of a ${report.method === 'delta' ? 'deltas' : 'images'}/ target`,
      );
    }
    if (hardware !== node.hardwareId) {
      throw new OtterError('FORBIDDEN', 'a node reports downloads of its own hardware only');
    }
    let version: string;
    let fullBytes: number;
    if (report.method === 'delta') {
      const build = await this.builds.findByTargetPath(report.targetPath);
      if (!build || build.state !== 'published') throw new OtterError('NOT_FOUND', 'no such published delta');
      version = build.to.version;
      fullBytes = build.to.length;
    } else {
      const signed = await this.repository.signedTarget(report.targetPath);
      if (!signed) throw new OtterError('NOT_FOUND', 'no such image');
      version = report.targetPath.split('/')[2]!;
      fullBytes = signed.length;
    }
    if (report.fullBytes !== fullBytes) {
      throw new ValidationError(`fullBytes: the image is ${fullBytes} bytes`, { fullBytes });
    }
    // What one install can save is bounded by the image it installs: a node cannot inflate the totals.
    if (report.bytesDownloaded > fullBytes) {
      throw new ValidationError(
        `bytesDownloaded: at most the full image's ${fullBytes} bytes (the bytes of ${report.targetPath} received)`,
        { fullBytes },
      );
    }
    await this.downloads.insert({
      nodeId: node.id,
      hardwareId: node.hardwareId,
      version,
      method: report.method,
      bytesDownloaded: report.bytesDownloaded,
      fullBytes,
    });
    this.metrics.downloaded(node.hardwareId, fullBytes, report.bytesDownloaded);
  }

  /** What the node downloaded lately (newest first): each release, how, and its bytes. */
  downloadsOf(nodeId: string, limit: number): Promise<NodeDownloadDto[]> {
    return this.downloads.forNode(nodeId, limit);
  }

  async savings(hardware?: string): Promise<SavingsDto> {
    return {
      releases: await this.downloads.totalsByRelease(hardware),
      nodes: await this.downloads.totalsByNode(hardware),
    };
  }

  /** Removes a build's finished jobs (the plan job, and the flow it added with its children) so its ids are free. */
  private async dropJobs(buildId: string): Promise<void> {
    const plan = await this.queue.getJob(buildId);
    const flow = (plan?.returnvalue as { assembleJobId?: string } | undefined)?.assembleJobId;
    if (flow) await this.queue.remove(flow, { removeChildren: true });
    await this.queue.remove(buildId);
  }
}

export function toDto(r: DeltaBuildRecord): DeltaBuildDto {
  return {
    id: r.id,
    hardwareId: r.hardwareId,
    from: r.from,
    to: r.to,
    state: r.state,
    progress: r.progress,
    targetPath: r.targetPath,
    patchLength: r.patchLength,
    saving: r.patchLength === null || r.to.length === 0 ? null : 1 - r.patchLength / r.to.length,
    buildSeconds: r.buildSeconds,
    peakRssBytes: r.peakRssBytes,
    error: r.error,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
