import { Module } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { DirectorAssignmentRepository, DirectorAssignmentsModule } from '#otter/director';
import { NodesModule } from '#otter/nodes';
import { RolloutsModule } from '#otter/rollouts';
import { DeviceAuthGuard } from '../devices/device-auth.guard.js';
import { DeviceUpdatesController } from './device-updates.controller.js';
import { RolloutsController } from './rollouts.controller.js';

/** The rollout management API and the agents' update reports. Needs the BullMQ root (DeltasHttpModule's). */
@Module({
  imports: [
    RolloutsModule.register({
      imports: [DirectorAssignmentsModule],
      assignments: DirectorAssignmentRepository,
    }),
    AuthModule,
    NodesModule,
  ],
  controllers: [RolloutsController, DeviceUpdatesController],
  providers: [DeviceAuthGuard],
})
export class RolloutsHttpModule {}
