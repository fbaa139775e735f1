import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, Optional } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { Histogram } from 'prom-client';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { JOBS, QUEUES } from '#otter/queue';
import { RolloutTicker, type TickReport } from '#otter/rollouts';

/**
 * Runs rollout ticks. BullMQ gives each job to one worker, but the repeatable tick and an immediate one can
 * run at once in two schedulers: RolloutTicker's per-rollout claim is what keeps that safe.
 */
@Processor(QUEUES.rollouts)
export class RolloutTickProcessor extends WorkerHost {
  private readonly logger = new Logger(RolloutTickProcessor.name);
  private readonly durations: Histogram<'outcome'> | undefined;

  constructor(
    private readonly ticker: RolloutTicker,
    @Optional() metrics?: OtterMetrics,
  ) {
    super();
    // Registered at start, so the family is exported before the first tick.
    this.durations = metrics?.histogram(METRICS.schedulerTickDuration);
  }

  async process(job: Job): Promise<{ rollouts: TickReport[] }> {
    if (job.name !== JOBS.rolloutTick) {
      this.logger.warn(`ignoring unknown job ${job.name}`);
      return { rollouts: [] };
    }
    const started = performance.now();
    let outcome: 'ok' | 'error' = 'error';
    try {
      const rollouts = await this.ticker.tick();
      outcome = 'ok';
      return { rollouts };
    } finally {
      this.durations?.observe({ outcome }, (performance.now() - started) / 1000);
    }
  }
}
