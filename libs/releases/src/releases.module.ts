import { Module } from '@nestjs/common';
import { AuditModule } from '#otter/audit';
import { TufModule } from '#otter/tuf';
import { ReleaseEvents } from './release-events.js';
import { ReleaseRepository } from './release.repository.js';
import { ReleaseService } from './release.service.js';

@Module({
  imports: [TufModule, AuditModule],
  providers: [ReleaseRepository, ReleaseService, ReleaseEvents],
  exports: [ReleaseService, ReleaseEvents],
})
export class ReleasesModule {}
