import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { JOBS, QUEUES, RETENTION_PURGE_JOB_OPTIONS } from '#otter/queue';

/** Registers the repeatable retention purge under a fixed scheduler id: every scheduler upserts the same one. */
@Injectable()
export class RetentionPurgeSchedule implements OnApplicationBootstrap {
  constructor(
    @InjectQueue(QUEUES.retention) private readonly queue: Queue,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.queue.upsertJobScheduler(
      JOBS.retentionPurge,
      { every: this.config.retention.every * 1000 },
      { name: JOBS.retentionPurge, data: {}, opts: RETENTION_PURGE_JOB_OPTIONS },
    );
  }
}
