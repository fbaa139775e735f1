import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { JOBS, QUEUES } from '#otter/queue';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';

@Processor(QUEUES.tufMaintenance)
export class TufMaintenanceProcessor extends WorkerHost {
  private readonly logger = new Logger(TufMaintenanceProcessor.name);

  constructor(@Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository) {
    super();
  }

  async process(job: Job): Promise<{ resigned: string[] }> {
    if (job.name !== JOBS.tufResign) {
      this.logger.warn(`ignoring unknown job ${job.name}`);
      return { resigned: [] };
    }
    return { resigned: await this.repository.resignExpiring() };
  }
}
