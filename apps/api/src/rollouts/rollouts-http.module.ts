import { Module } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { DirectorAssignmentRepository, DirectorAssignmentsModule } from '#otter/director';
import { NodesModule } from '#otter/nodes';
import { RolloutsModule } from '#otter/rollouts';
import { DeviceAuthGuard } from '../devices/device-auth.guard.js';
import { DeviceUpdatesController } from './device-updates.controller.js';
import { RolloutsController } from './rollouts.controller.js';

/** The rollouts lib wired to the director; one object, so every module importing it shares one instance. */
export const ROLLOUTS_MODULE = RolloutsModule.register({
  imports: [DirectorAssignmentsModule],
  assignments: DirectorAssignmentRepository,
});

/** The rollout management API and the agents' update reports. Needs the BullMQ root (DeltasHttpModule's). */
@Module({
  imports: [ROLLOUTS_MODULE, AuthModule, NodesModule],
  controllers: [RolloutsController, DeviceUpdatesController],
  providers: [DeviceAuthGuard],
})
export class RolloutsHttpModule {}
