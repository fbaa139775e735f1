import { Module } from '@nestjs/common';
import { TufModule } from '#otter/tuf';
import { ReleaseRepository } from './release.repository.js';
import { ReleaseService } from './release.service.js';

@Module({
  imports: [TufModule],
  providers: [ReleaseRepository, ReleaseService],
  exports: [ReleaseService],
})
export class ReleasesModule {}
