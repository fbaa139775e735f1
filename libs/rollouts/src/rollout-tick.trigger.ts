import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { JOBS, QUEUES, ROLLOUT_TICK_DEDUPLICATION_MS, ROLLOUT_TICK_JOB_OPTIONS } from '#otter/queue';

/** Asks the scheduler for a tick now, rather than at the next repeat (a rollout started, resumed, a node failed). */
@Injectable()
export class RolloutTickTrigger {
  private readonly logger = new Logger(RolloutTickTrigger.name);

  constructor(@InjectQueue(QUEUES.rollouts) private readonly queue: Queue) {}

  async tickSoon(): Promise<void> {
    try {
      await this.queue.add(
        JOBS.rolloutTick,
        {},
        {
          ...ROLLOUT_TICK_JOB_OPTIONS,
          deduplication: { id: JOBS.rolloutTick, ttl: ROLLOUT_TICK_DEDUPLICATION_MS },
        },
      );
    } catch (error) {
      // The repeatable tick catches up; an event must not fail because Redis blinked.
      this.logger.warn({ err: error }, 'could not queue an immediate rollout tick');
    }
  }
}
