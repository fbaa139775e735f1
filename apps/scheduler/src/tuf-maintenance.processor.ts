import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { EventPublisher } from '#otter/events';
import { JOBS, QUEUES } from '#otter/queue';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';

/** The root is re-signed only by the offline ceremony, so its nearing expiry is announced from this far. */
const ROOT_WARNING_SECONDS = 30 * 86_400;
/** ... and at most this often per process, not on every re-sign job. */
const ROOT_WARNING_EVERY_MS = 86_400_000;

@Processor(QUEUES.tufMaintenance)
export class TufMaintenanceProcessor extends WorkerHost {
  private readonly logger = new Logger(TufMaintenanceProcessor.name);
  private rootWarned?: { version: number; at: number };

  constructor(
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    private readonly publisher: EventPublisher,
  ) {
    super();
  }

  async process(job: Job): Promise<{ resigned: string[] }> {
    if (job.name !== JOBS.tufResign) {
      this.logger.warn(`ignoring unknown job ${job.name}`);
      return { resigned: [] };
    }
    const resigned = await this.repository.resignExpiring();
    if (resigned.length > 0)
      await this.publisher.publish({ kind: 'tuf.metadata.resigned', repository: 'image', roles: resigned });
    await this.announceRootExpiry();
    return { resigned };
  }

  private async announceRootExpiry(now = Date.now()): Promise<void> {
    if (!(await this.repository.isInitialized())) return;
    const root = (await this.repository.currentRoot()).signed;
    const secondsLeft = Math.floor((Date.parse(root.expires) - now) / 1000);
    if (secondsLeft >= ROOT_WARNING_SECONDS) return;
    const warned = this.rootWarned;
    if (warned && warned.version === root.version && now - warned.at < ROOT_WARNING_EVERY_MS) return;
    this.rootWarned = { version: root.version, at: now };
    await this.publisher.publish({
      kind: 'tuf.role.expiring',
      repository: 'image',
      role: 'root',
      version: root.version,
      expires: root.expires,
      secondsLeft,
    });
  }
}
