import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { DirectorMetadataStore } from '#otter/director';
import { EventPublisher } from '#otter/events';
import { JOBS, QUEUES } from '#otter/queue';
import { IMAGE_REPOSITORY, nearingExpiry, type ExpiringRole, type TufRepository } from '#otter/tuf';

/** A role version nearing expiry is announced at most this often per process, not on every re-sign job. */
const WARNING_EVERY_MS = 86_400_000;

type Repository = 'image' | 'director';

@Processor(QUEUES.tufMaintenance)
export class TufMaintenanceProcessor extends WorkerHost {
  private readonly logger = new Logger(TufMaintenanceProcessor.name);
  /** `repository/role@version` -> when it was last announced. */
  private readonly warned = new Map<string, number>();

  constructor(
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    private readonly director: DirectorMetadataStore,
    private readonly publisher: EventPublisher,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {
    super();
  }

  async process(job: Job): Promise<{ resigned: string[] }> {
    if (job.name !== JOBS.tufResign) {
      this.logger.warn(`ignoring unknown job ${job.name}`);
      return { resigned: [] };
    }
    try {
      // The repository announces each role it re-signed (tuf.metadata.resigned) once it committed.
      return { resigned: await this.repository.resignExpiring() };
    } finally {
      // Also when re-signing failed: a role that cannot be re-signed is the one that will near its expiry.
      await this.announceExpiring();
    }
  }

  /**
   * Every role that nears its expiry (expiry-warning.ts in #otter/tuf): each image role, and the director's
   * root. The director's per-node roles are re-signed when the node polls, so the soonest of them is the
   * node that polled least recently (a node that is off), not something to re-sign: the gauge
   * otter_tuf_role_expiry_seconds shows it, no event does.
   */
  private async announceExpiring(now = Date.now()): Promise<void> {
    for (const [at, key] of [...this.warned].map(([k, t]) => [t, k] as const))
      if (now - at >= WARNING_EVERY_MS) this.warned.delete(key);
    if (await this.repository.isInitialized())
      await this.announce('image', await this.repository.nearingExpiry(now), now);
    const directorRoot = await this.director.latestRoot();
    if (directorRoot) {
      const heads = new Map([['root', { version: directorRoot.version, expiresAt: directorRoot.expiresAt }]]);
      await this.announce('director', nearingExpiry(heads, this.config.tuf, now), now);
    }
  }

  private async announce(repository: Repository, roles: ExpiringRole[], now: number): Promise<void> {
    for (const role of roles) {
      const key = `${repository}/${role.role}@${role.version}`;
      if (this.warned.has(key)) continue;
      this.warned.set(key, now);
      await this.publisher.publish({ kind: 'tuf.role.expiring', repository, ...role });
    }
  }
}
