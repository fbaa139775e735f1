import { setTimeout as sleep } from 'node:timers/promises';
import { InjectQueue } from '@nestjs/bullmq';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { Worker, type Job, type Queue } from 'bullmq';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { DeltaBuildService } from '#otter/delta-builds';
import { JOBS, QUEUES, QueueMetrics, deltaWorkerOptions, redisOptions } from '#otter/queue';
import {
  DeltaBuildJobs,
  type AssembleJobData,
  type ExtentJobData,
  type PlanJobData,
} from './delta-build.jobs.js';
import { WorkDir } from './work-dir.js';

/** How often any worker re-queues builds that never reached Redis and patches not yet published. */
const SWEEP_EVERY_MS = 60_000;
/** On shutdown, active jobs get this long to finish; after that they are left to stalled-job recovery. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * The BullMQ worker of the delta-build queue. Created by hand rather than with @Processor: its concurrency
 * and lock settings come from the runtime config (OTTER_DELTA_WORKER_CONCURRENCY, OTTER_DELTA_LOCK_SECONDS).
 */
@Injectable()
export class DeltaBuildWorker implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(DeltaBuildWorker.name);
  private worker?: Worker;

  constructor(
    private readonly jobs: DeltaBuildJobs,
    private readonly deltas: DeltaBuildService,
    private readonly work: WorkDir,
    @InjectQueue(QUEUES.deltaBuild) private readonly queue: Queue,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
    private readonly queueMetrics: QueueMetrics,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const worker = new Worker(QUEUES.deltaBuild, (job) => this.process(job), {
      connection: redisOptions(this.config.redisUrl),
      prefix: this.config.queuePrefix,
      concurrency: this.config.delta.workerConcurrency,
      ...deltaWorkerOptions(this.config.delta),
    });
    this.worker = worker;
    this.queueMetrics.observe(worker);
    worker.on('failed', (job, error) => {
      if (job) void this.onFailed(job, error);
    });
    worker.on('error', (error) => this.logger.warn(`delta-build worker: ${error.message}`));
    await worker.waitUntilReady();
    await this.queue.upsertJobScheduler(
      JOBS.deltaSweep,
      { every: SWEEP_EVERY_MS },
      { name: JOBS.deltaSweep, data: {}, opts: { attempts: 1, removeOnComplete: true, removeOnFail: 100 } },
    );
    const pending = await this.deltas.requeuePending();
    this.logger.log(
      { concurrency: this.config.delta.workerConcurrency, ...pending },
      'delta-build worker consuming the queue',
    );
  }

  async onModuleDestroy(): Promise<void> {
    const worker = this.worker;
    if (!worker) return this.jobs.close();
    const closed = await Promise.race([
      worker.close().then(() => true),
      sleep(SHUTDOWN_GRACE_MS, false, { ref: false }),
    ]);
    await this.jobs.close();
    if (closed) await this.work.remove();
    else
      this.logger.warn('jobs still active at shutdown: another worker resumes them once their lock expires');
  }

  private process(job: Job): Promise<unknown> {
    switch (job.name) {
      case JOBS.deltaPlan:
        return this.jobs.plan(job as Job<PlanJobData>);
      case JOBS.deltaExtent:
        return this.jobs.extent(job as Job<ExtentJobData>);
      case JOBS.deltaAssemble:
        return this.jobs.assemble(job as Job<AssembleJobData>);
      case JOBS.deltaPublish:
        return this.jobs.publish();
      case JOBS.deltaSweep:
        return this.deltas.requeuePending();
      default:
        this.logger.warn(`ignoring unknown job ${job.name}`);
        return Promise.resolve(undefined);
    }
  }

  /** 'failed' fires for every failed attempt; only a job in the failed state has failed for good. */
  private async onFailed(job: Job, error: Error): Promise<void> {
    try {
      if ((await job.getState()) !== 'failed') return;
      await this.jobs.recordFailure(job, error);
    } catch (e) {
      this.logger.warn(
        `could not record the failure of job ${job.id}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
}
