import { Inject, Module, type OnApplicationBootstrap } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { ImageRepositoryInitializer, TufModule } from '#otter/tuf';
import { TufAdminController } from './tuf-admin.controller.js';
import { TimestampCache } from './timestamp-cache.js';
import { TufImageController } from './tuf-image.controller.js';
import { TimestampRoute } from './timestamp.route.js';

@Module({
  imports: [TufModule, AuthModule],
  controllers: [TufImageController, TufAdminController],
  providers: [TimestampCache, TimestampRoute],
})
export class TufHttpModule implements OnApplicationBootstrap {
  constructor(@Inject(ImageRepositoryInitializer) private readonly initializer: ImageRepositoryInitializer) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.initializer.initialize();
  }
}
