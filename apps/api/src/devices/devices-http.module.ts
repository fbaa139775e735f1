import { Module } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { NodesModule } from '#otter/nodes';
import { DeviceAuthGuard } from './device-auth.guard.js';
import { DeviceController } from './device.controller.js';
import { EnrollmentController } from './enrollment.controller.js';

@Module({
  imports: [NodesModule, AuthModule],
  controllers: [EnrollmentController, DeviceController],
  providers: [DeviceAuthGuard],
})
export class DevicesHttpModule {}
