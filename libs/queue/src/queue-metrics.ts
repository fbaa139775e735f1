import { getQueueToken, WorkerHost } from '@nestjs/bullmq';
import { Injectable, Optional, type OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService, ModuleRef } from '@nestjs/core';
import type { Job, Queue, Worker } from 'bullmq';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { QUEUES } from './queues.js';

/** The job states otter_queue_jobs reports: what an operator watches for a stuck or failing queue. */
export const REPORTED_JOB_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/** A scrape must not wait on a Redis that is gone (ioredis queues commands until it comes back). */
const DEPTH_DEADLINE_MS = 1_000;

/**
 * Queue depths of every Otter queue this process has registered, read from Redis at scrape time, and the
 * duration of each job this process's workers finish.
 */
@Injectable()
export class QueueMetrics implements OnApplicationBootstrap {
  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly discovery: DiscoveryService,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {}

  onApplicationBootstrap(): void {
    const metrics = this.metrics;
    if (!metrics) return;
    const queues = this.registeredQueues();
    if (queues.length > 0) {
      metrics.gauge(
        METRICS.queueJobs,
        async (gauge) => {
          const counts = await Promise.all(queues.map((q) => q.getJobCounts(...REPORTED_JOB_STATES)));
          queues.forEach((queue, i) => {
            for (const state of REPORTED_JOB_STATES)
              gauge.set({ queue: queue.name, state }, counts[i][state] ?? 0);
          });
        },
        DEPTH_DEADLINE_MS,
      );
    }
    // Registered even where no worker runs here yet, so every process exports the family from the start.
    metrics.histogram(METRICS.queueJobDuration);
    for (const host of this.workerHosts()) this.observe(host.worker);
  }

  /**
   * Times the jobs a worker finishes. Workers of @Processor classes are found on their own; one created by
   * hand (the delta-build worker, whose options come from the runtime config) is passed here by its owner.
   */
  observe(worker: Worker): void {
    if (!this.metrics) return;
    const durations = this.metrics.histogram(METRICS.queueJobDuration);
    const record = (job: Job | undefined, outcome: 'completed' | 'failed') => {
      if (!job?.processedOn || !job.finishedOn) return;
      durations.observe(
        { queue: worker.name, job: job.name, outcome },
        (job.finishedOn - job.processedOn) / 1000,
      );
    };
    worker.on('completed', (job) => record(job, 'completed'));
    worker.on('failed', (job) => record(job, 'failed'));
  }

  private registeredQueues(): Queue[] {
    return Object.values(QUEUES).flatMap((name) => {
      try {
        return [this.moduleRef.get<Queue>(getQueueToken(name), { strict: false })];
      } catch {
        return []; // not a queue this process uses
      }
    });
  }

  private workerHosts(): WorkerHost[] {
    return this.discovery
      .getProviders()
      .map((wrapper) => wrapper.instance as unknown)
      .filter((instance): instance is WorkerHost => instance instanceof WorkerHost);
  }
}
