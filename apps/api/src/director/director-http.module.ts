import { Inject, Module, type OnApplicationBootstrap } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { DirectorInitializer, DirectorModule } from '#otter/director';
import { NodesModule } from '#otter/nodes';
import { DeviceAuthGuard } from '../devices/device-auth.guard.js';
import { DirectorAdminController } from './director-admin.controller.js';
import { DirectorMetadataController } from './director-metadata.controller.js';
import { DirectorPollService } from './director-poll.service.js';
import { DirectorTimestampRoute } from './director-timestamp.route.js';

@Module({
  imports: [DirectorModule, NodesModule, AuthModule],
  controllers: [DirectorMetadataController, DirectorAdminController],
  providers: [DeviceAuthGuard, DirectorPollService, DirectorTimestampRoute],
})
export class DirectorHttpModule implements OnApplicationBootstrap {
  constructor(@Inject(DirectorInitializer) private readonly initializer: DirectorInitializer) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.initializer.initialize();
  }
}
