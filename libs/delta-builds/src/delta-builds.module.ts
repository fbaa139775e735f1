import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { QUEUES } from '#otter/queue';
import { ReleasesModule } from '#otter/releases';
import { RetentionModule } from '#otter/retention';
import { TufModule } from '#otter/tuf';
import { DeltaBuildRepository } from './delta-build.repository.js';
import { DeltaBuildService } from './delta-build.service.js';
import { DeltaMetrics } from './delta-metrics.js';
import { DeltaStatsRepository } from './delta-stats.repository.js';
import { DeltaReleaseTrigger } from './delta-release-trigger.js';
import { DownloadRepository } from './download.repository.js';

/**
 * Delta builds and downloads. Needs the application's DbModule, StorageModule and BullMQ root configuration
 * (`QueueModule.forRoot(config)`); registers the delta-build queue itself.
 */
@Module({
  imports: [
    ReleasesModule,
    TufModule,
    RetentionModule,
    BullModule.registerQueue({ name: QUEUES.deltaBuild }),
  ],
  providers: [
    DeltaBuildRepository,
    DownloadRepository,
    DeltaStatsRepository,
    DeltaMetrics,
    DeltaBuildService,
    DeltaReleaseTrigger,
  ],
  exports: [DeltaBuildService, DeltaBuildRepository],
})
export class DeltaBuildsModule {}
