import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, type OtterConfig } from '#otter/config';
import { DbModule } from '#otter/db';
import { DirectorAssignmentRepository, DirectorAssignmentsModule } from '#otter/director';
import { EventsModule } from '#otter/events';
import { LoggingModule } from '#otter/logging';
import { MetricsModule } from '#otter/metrics';
import { QUEUES, QueueModule } from '#otter/queue';
import { RetentionModule } from '#otter/retention';
import { RolloutsModule } from '#otter/rollouts';
import { StorageModule } from '#otter/storage';
import { TufModule } from '#otter/tuf';
import { RolloutTickProcessor } from './rollout-tick.processor.js';
import { RolloutTickSchedule } from './rollout-tick.schedule.js';
import { RetentionPurgeProcessor } from './retention-purge.processor.js';
import { RetentionPurgeSchedule } from './retention-purge.schedule.js';
import { TufMaintenanceProcessor } from './tuf-maintenance.processor.js';
import { TufMaintenanceSchedule } from './tuf-maintenance.schedule.js';

/**
 * The scheduler process: TUF re-signing, rollout ticks and retention purges, no HTTP server. Safe to run more
 * than one.
 */
@Module({})
export class SchedulerModule {
  static forRoot(config: OtterConfig): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(config, 'scheduler'),
        // Served on OTTER_METRICS_PORT when set (docs/operations.md).
        MetricsModule.forRoot({ process: 'scheduler', fleet: false, serve: true }),
        DbModule,
        EventsModule,
        StorageModule,
        TufModule,
        QueueModule.forRoot(config, QUEUES.tufMaintenance, QUEUES.rollouts, QUEUES.retention),
        RetentionModule,
        // The director's stored metadata, for its root's expiry (tuf-maintenance.processor.ts); no keys.
        DirectorAssignmentsModule,
        RolloutsModule.register({
          imports: [DirectorAssignmentsModule],
          assignments: DirectorAssignmentRepository,
        }),
      ],
      providers: [
        TufMaintenanceProcessor,
        TufMaintenanceSchedule,
        RolloutTickProcessor,
        RolloutTickSchedule,
        RetentionPurgeProcessor,
        RetentionPurgeSchedule,
      ],
    };
  }
}
