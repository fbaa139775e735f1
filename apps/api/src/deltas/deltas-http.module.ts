import { Module, type DynamicModule } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import type { OtterConfig } from '#otter/config';
import { DeltaBuildsModule } from '#otter/delta-builds';
import { NodesModule } from '#otter/nodes';
import { QueueModule } from '#otter/queue';
import { DeviceAuthGuard } from '../devices/device-auth.guard.js';
import { DeltasController } from './deltas.controller.js';
import { DeviceDownloadsController } from './device-downloads.controller.js';

/**
 * Delta builds, download reports and savings. Brings the BullMQ root configuration (the api's first queue
 * producer): published releases and requests queue builds for apps/delta-worker.
 */
@Module({})
export class DeltasHttpModule {
  static forRoot(config: OtterConfig): DynamicModule {
    return {
      module: DeltasHttpModule,
      imports: [QueueModule.forRoot(config), DeltaBuildsModule, AuthModule, NodesModule],
      controllers: [DeltasController, DeviceDownloadsController],
      providers: [DeviceAuthGuard],
    };
  }
}
