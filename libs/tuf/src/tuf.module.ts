import { Inject, Injectable, Logger, Module } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { EventPublisher } from '#otter/events';
import { loadOrCreateDevRootKey, OnlineKeyStore } from '#otter/tuf-signing';
import { DelegationLayout, IMAGE_REPOSITORY_FAMILIES } from './delegation-layout.js';
import { TufMetadataRepository } from './tuf-metadata.repository.js';
import { IMAGE_REPOSITORY_NAME, TufMetrics } from './tuf-metrics.js';
import { TufRepository } from './tuf-repository.js';

export const IMAGE_REPOSITORY = Symbol('IMAGE_REPOSITORY');

/** Sets up the image repository's root on first start: a dev root outside production, else waits for the ceremony. */
@Injectable()
export class ImageRepositoryInitializer {
  private readonly logger = new Logger('ImageRepository');

  constructor(
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async initialize(): Promise<void> {
    if (await this.repository.isInitialized()) return;
    if (this.config.env === 'production') {
      await this.repository.preferredOnlineKeys().catch(() => undefined);
      this.logger.warn(
        'the image repository has no root yet: run the root ceremony (docs/tuf.md) — `otter tuf root create`, ' +
          '`otter tuf root sign`, `otter tuf root publish`',
      );
      return;
    }
    const { signer, file } = await loadOrCreateDevRootKey(this.config.dataDir);
    if (await this.repository.initializeWithDevRoot(signer)) {
      this.logger.warn(
        `DEVELOPMENT ROOT: the image repository was initialized with a 1-of-1 root whose private key is ${file}. ` +
          'Anyone who can read the data dir can sign any update. NOT FOR PRODUCTION: set OTTER_ENV=production ' +
          'and run the offline root ceremony (docs/tuf.md).',
      );
    }
  }
}

@Module({
  providers: [
    TufMetadataRepository,
    {
      provide: IMAGE_REPOSITORY,
      // The publisher is global (EventsModule) in every process; optional so a context without it still signs.
      inject: [OTTER_CONFIG, TufMetadataRepository, { token: EventPublisher, optional: true }],
      useFactory: async (
        config: OtterConfig,
        store: TufMetadataRepository,
        events?: EventPublisher,
      ): Promise<TufRepository> => {
        const keys = await OnlineKeyStore.open(IMAGE_REPOSITORY_NAME, config, new Logger('OnlineKeyStore'));
        const layout = new DelegationLayout(IMAGE_REPOSITORY_FAMILIES, config.tuf.binBits);
        return new TufRepository(IMAGE_REPOSITORY_NAME, store, keys, layout, config.tuf, events);
      },
    },
    ImageRepositoryInitializer,
    TufMetrics,
  ],
  exports: [IMAGE_REPOSITORY, ImageRepositoryInitializer],
})
export class TufModule {}
