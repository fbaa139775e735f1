import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, type OtterConfig } from '#otter/config';
import { DbModule } from '#otter/db';
import { LoggingModule } from '#otter/logging';

/** The delta builder process: an application context with no HTTP server. */
@Module({})
export class DeltaWorkerModule {
  static forRoot(config: OtterConfig): DynamicModule {
    return {
      module: DeltaWorkerModule,
      imports: [ConfigModule.forRoot(config), LoggingModule.forRoot(config, 'delta-worker'), DbModule],
    };
  }
}
