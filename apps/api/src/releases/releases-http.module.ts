import { Module } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { ReleasesModule } from '#otter/releases';
import { ReleasesController } from './releases.controller.js';

@Module({
  imports: [AuthModule, ReleasesModule],
  controllers: [ReleasesController],
})
export class ReleasesHttpModule {}
