import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { JOBS, QUEUES, ROLLOUT_TICK_JOB_OPTIONS } from '#otter/queue';

/** Registers the repeatable rollout tick under a fixed scheduler id: every scheduler upserts the same one. */
@Injectable()
export class RolloutTickSchedule implements OnApplicationBootstrap {
  constructor(
    @InjectQueue(QUEUES.rollouts) private readonly queue: Queue,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.queue.upsertJobScheduler(
      JOBS.rolloutTick,
      { every: this.config.rollouts.tickSeconds * 1000 },
      { name: JOBS.rolloutTick, data: {}, opts: ROLLOUT_TICK_JOB_OPTIONS },
    );
  }
}
