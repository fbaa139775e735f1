import { Inject, Module, type OnApplicationBootstrap } from '@nestjs/common';
import { ImageRepositoryInitializer, TufModule } from '#otter/tuf';
import { TimestampCache } from './timestamp-cache.js';
import { TufImageController } from './tuf-image.controller.js';

@Module({
  imports: [TufModule],
  controllers: [TufImageController],
  providers: [TimestampCache],
})
export class TufHttpModule implements OnApplicationBootstrap {
  constructor(@Inject(ImageRepositoryInitializer) private readonly initializer: ImageRepositoryInitializer) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.initializer.initialize();
  }
}
