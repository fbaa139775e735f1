import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { DbModule } from '#otter/db';
import { DeltaBuildsModule } from '#otter/delta-builds';
import { LoggingModule } from '#otter/logging';
import { MetricsModule } from '#otter/metrics';
import { QUEUES, QueueModule } from '#otter/queue';
import { StorageModule } from '#otter/storage';
import { TufModule } from '#otter/tuf';
import { DeltaBuildJobs } from './delta-build.jobs.js';
import { DeltaBuildWorker } from './delta-build.worker.js';
import { WorkDir } from './work-dir.js';

/**
 * The delta builder process: an application context with no HTTP server. It consumes the delta-build queue,
 * reads images from and writes patches to the blob store, and signs published patches into the image
 * repository (so it needs the data dir's online keys, like the api and the scheduler).
 */
@Module({})
export class DeltaWorkerModule {
  static forRoot(config: OtterConfig): DynamicModule {
    return {
      module: DeltaWorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(config, 'delta-worker'),
        // Served on OTTER_METRICS_PORT when set (docs/operations.md).
        MetricsModule.forRoot({ process: 'delta-worker', fleet: false, serve: true }),
        DbModule,
        StorageModule,
        TufModule,
        QueueModule.forRoot(config, QUEUES.deltaBuild),
        DeltaBuildsModule,
      ],
      providers: [
        {
          provide: WorkDir,
          inject: [OTTER_CONFIG],
          useFactory: (c: OtterConfig) => WorkDir.create(c.dataDir),
        },
        DeltaBuildJobs,
        DeltaBuildWorker,
      ],
    };
  }
}
