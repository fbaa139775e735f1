import { Injectable, Logger } from '@nestjs/common';
import type { ReleaseDto } from '#otter/contracts';

export type ReleasePublishedListener = (release: ReleaseDto) => Promise<void>;

/**
 * Tells other capabilities (delta builds, ...) that a release was published, without releases knowing what
 * they do with it. A listener's failure is logged and never undoes or fails the release: the release is
 * signed and stored by then, and whatever the listener started can be started again.
 */
@Injectable()
export class ReleaseEvents {
  private readonly logger = new Logger(ReleaseEvents.name);
  private readonly listeners: ReleasePublishedListener[] = [];

  onPublished(listener: ReleasePublishedListener): void {
    this.listeners.push(listener);
  }

  async published(release: ReleaseDto): Promise<void> {
    for (const listener of this.listeners) {
      try {
        await listener(release);
      } catch (e) {
        this.logger.warn(
          { release: release.id, err: e instanceof Error ? e.message : String(e) },
          'a release-published listener failed',
        );
      }
    }
  }
}
