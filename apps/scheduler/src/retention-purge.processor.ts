import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { JOBS, QUEUES } from '#otter/queue';
import { RetentionService, type PurgeReport } from '#otter/retention';

/** Runs the retention purge; BullMQ gives each occurrence to one scheduler. */
@Processor(QUEUES.retention)
export class RetentionPurgeProcessor extends WorkerHost {
  private readonly logger = new Logger(RetentionPurgeProcessor.name);

  constructor(private readonly retention: RetentionService) {
    super();
  }

  async process(job: Job): Promise<PurgeReport | null> {
    if (job.name !== JOBS.retentionPurge) {
      this.logger.warn(`ignoring unknown job ${job.name}`);
      return null;
    }
    return this.retention.purge();
  }
}
