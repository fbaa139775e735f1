import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ReleaseEvents } from '#otter/releases';
import { DeltaBuildService } from './delta-build.service.js';

/** Every published release queues its delta builds (DeltaBuildService.planForRelease). */
@Injectable()
export class DeltaReleaseTrigger implements OnModuleInit {
  constructor(
    private readonly events: ReleaseEvents,
    private readonly deltas: DeltaBuildService,
  ) {}

  onModuleInit(): void {
    this.events.onPublished(async (release) => {
      await this.deltas.planForRelease(release);
    });
  }
}
