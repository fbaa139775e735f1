import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, type OtterConfig } from '#otter/config';
import { DbModule } from '#otter/db';
import { LoggingModule } from '#otter/logging';
import { QUEUES, QueueModule } from '#otter/queue';

/**
 * The delta builder process: an application context with no HTTP server, connected to the delta-build queue.
 * Delta build processors arrive with the delta issue; today it only holds the queue connection.
 */
@Module({})
export class DeltaWorkerModule {
  static forRoot(config: OtterConfig): DynamicModule {
    return {
      module: DeltaWorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(config, 'delta-worker'),
        DbModule,
        QueueModule.forRoot(config, QUEUES.deltaBuild),
      ],
    };
  }
}
