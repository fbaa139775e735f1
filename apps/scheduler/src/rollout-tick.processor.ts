import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, Optional } from '@nestjs/common';
import type { Job } from 'bullmq';
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

  constructor(
    private readonly ticker: RolloutTicker,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {
    super();
  }

  async process(job: Job): Promise<{ rollouts: TickReport[] }> {
    if (job.name !== JOBS.rolloutTick) {
      this.logger.warn(`ignoring unknown job ${job.name}`);
      return { rollouts: [] };
    }
    const timer = this.metrics?.histogram(METRICS.schedulerTickDuration);
    const started = performance.now();
    let outcome: 'ok' | 'error' = 'error';
    try {
      const rollouts = await this.ticker.tick();
      outcome = 'ok';
      return { rollouts };
    } finally {
      timer?.observe({ outcome }, (performance.now() - started) / 1000);
    }
  }
}
