import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { JOBS, QUEUES } from '#otter/queue';
import { RolloutTicker, type TickReport } from '#otter/rollouts';

/**
 * Runs rollout ticks. BullMQ gives each job to one worker, but the repeatable tick and an immediate one can
 * run at once in two schedulers: RolloutTicker's per-rollout claim is what keeps that safe.
 */
@Processor(QUEUES.rollouts)
export class RolloutTickProcessor extends WorkerHost {
  private readonly logger = new Logger(RolloutTickProcessor.name);

  constructor(private readonly ticker: RolloutTicker) {
    super();
  }

  async process(job: Job): Promise<{ rollouts: TickReport[] }> {
    if (job.name !== JOBS.rolloutTick) {
      this.logger.warn(`ignoring unknown job ${job.name}`);
      return { rollouts: [] };
    }
    return { rollouts: await this.ticker.tick() };
  }
}
