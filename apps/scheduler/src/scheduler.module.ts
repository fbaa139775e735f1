import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, type OtterConfig } from '#otter/config';
import { DbModule } from '#otter/db';
import { LoggingModule } from '#otter/logging';
import { QUEUES, QueueModule } from '#otter/queue';
import { TufModule } from '#otter/tuf';
import { TufMaintenanceProcessor } from './tuf-maintenance.processor.js';
import { TufMaintenanceSchedule } from './tuf-maintenance.schedule.js';

/** The scheduler process: repeatable maintenance jobs, no HTTP server. Safe to run more than one. */
@Module({})
export class SchedulerModule {
  static forRoot(config: OtterConfig): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(config, 'scheduler'),
        DbModule,
        TufModule,
        QueueModule.forRoot(config, QUEUES.tufMaintenance),
      ],
      providers: [TufMaintenanceProcessor, TufMaintenanceSchedule],
    };
  }
}
