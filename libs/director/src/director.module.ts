import { Inject, Injectable, Logger, Module } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { EventPublisher } from '#otter/events';
import { loadOrCreateDevRootKey, OnlineKeyStore } from '#otter/tuf-signing';
import { DirectorAssignmentRepository } from './director-assignment.repository.js';
import { DirectorMetrics } from './director-metrics.js';
import { DirectorMetadataStore } from './director-metadata.store.js';
import { DirectorRoot } from './director-root.js';
import { DirectorRepository } from './director.repository.js';
import { HeldTimestamps } from './held-timestamps.js';

/** Sets up the director's root on first start: a dev root outside production, else waits for the ceremony. */
@Injectable()
export class DirectorInitializer {
  private readonly logger = new Logger('DirectorRepository');

  constructor(
    @Inject(DirectorRepository) private readonly director: DirectorRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async initialize(): Promise<void> {
    if (await this.director.isInitialized()) return;
    if (this.config.env === 'production') {
      this.logger.warn(
        'the director repository has no root yet: nodes get no assignments until its root ceremony has run ' +
          '(docs/tuf.md, "The director repository")',
      );
      return;
    }
    const { signer, file } = await loadOrCreateDevRootKey(this.config.dataDir);
    if (await this.director.initializeWithDevRoot(signer)) {
      this.logger.warn(
        `DEVELOPMENT ROOT: the director repository was initialized with a 1-of-1 root whose private key is ${file}. ` +
          'Anyone who can read the data dir can tell any node to install anything the image repository signs. ' +
          'NOT FOR PRODUCTION: set OTTER_ENV=production and run the offline root ceremony (docs/tuf.md).',
      );
    }
  }
}

/**
 * Only the assignments (what the rollout scheduler writes) and the stored metadata. Holds no keys. The held timestamps are here so an
 * assignment written by the process that serves polls drops the node's held answer at once.
 */
@Module({
  providers: [
    DirectorAssignmentRepository,
    // The director's rows of tuf_metadata, read by the scheduler for the root's expiry; no key is needed.
    DirectorMetadataStore,
    {
      provide: HeldTimestamps,
      inject: [OTTER_CONFIG],
      useFactory: (config: OtterConfig) => new HeldTimestamps(config.tuf.directorHeldNodes),
    },
  ],
  exports: [DirectorAssignmentRepository, HeldTimestamps, DirectorMetadataStore],
})
export class DirectorAssignmentsModule {}

/** The director repository: assignments, its root and online keys, and per-node signed metadata. */
@Module({
  imports: [DirectorAssignmentsModule],
  providers: [
    {
      provide: DirectorRepository,
      // The publisher is global (EventsModule) in every process; optional so a context without it still signs.
      inject: [
        OTTER_CONFIG,
        DirectorMetadataStore,
        HeldTimestamps,
        { token: EventPublisher, optional: true },
      ],
      useFactory: async (
        config: OtterConfig,
        store: DirectorMetadataStore,
        held: HeldTimestamps,
        events?: EventPublisher,
      ): Promise<DirectorRepository> => {
        // Its own key file: a stolen director key cannot sign the image repository, nor the other way round.
        const keys = await OnlineKeyStore.open('director', config, new Logger('OnlineKeyStore'));
        return new DirectorRepository(
          store,
          new DirectorRoot(store, keys, config.tuf, events),
          config.tuf,
          Date.now,
          held,
        );
      },
    },
    DirectorInitializer,
    DirectorMetrics,
  ],
  exports: [DirectorAssignmentsModule, DirectorRepository, DirectorInitializer],
})
export class DirectorModule {}
