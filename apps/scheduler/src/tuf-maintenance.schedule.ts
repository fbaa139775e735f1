import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { JOBS, QUEUES } from '#otter/queue';

/**
 * Registers the repeatable re-sign job. The scheduler id is fixed, so every scheduler process upserts the
 * same schedule and BullMQ hands each occurrence to exactly one worker.
 */
@Injectable()
export class TufMaintenanceSchedule implements OnApplicationBootstrap {
  constructor(
    @InjectQueue(QUEUES.tufMaintenance) private readonly queue: Queue,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.queue.upsertJobScheduler(
      JOBS.tufResign,
      { every: this.config.tuf.resignEvery * 1000 },
      { name: JOBS.tufResign, data: {}, opts: { attempts: 1 } },
    );
  }
}
