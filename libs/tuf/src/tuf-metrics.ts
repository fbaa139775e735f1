import { Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { TufMetadataRepository } from './tuf-metadata.repository.js';

/** The image repository's name in tuf_metadata (TufModule builds its TufRepository with it). */
export const IMAGE_REPOSITORY_NAME = 'image';

/** Seconds until each image repository role's latest version expires (the api only, at scrape time). */
@Injectable()
export class TufMetrics implements OnModuleInit {
  constructor(
    private readonly store: TufMetadataRepository,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {}

  onModuleInit(): void {
    if (!this.metrics?.fleet) return;
    this.metrics.gauge(METRICS.tufRoleExpiry, async (gauge) => {
      const now = Date.now();
      for (const [role, head] of await this.store.heads(IMAGE_REPOSITORY_NAME))
        gauge.set({ repository: IMAGE_REPOSITORY_NAME, role }, (Date.parse(head.expiresAt) - now) / 1000);
    });
  }
}
