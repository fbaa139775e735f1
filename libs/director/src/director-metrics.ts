import { Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { DIRECTOR_ROOT_REPOSITORY, DirectorMetadataStore } from './director-metadata.store.js';

/** Seconds until the soonest director metadata of each role expires (the api only, at scrape time). */
@Injectable()
export class DirectorMetrics implements OnModuleInit {
  constructor(
    private readonly store: DirectorMetadataStore,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {}

  onModuleInit(): void {
    if (!this.metrics?.fleet) return;
    this.metrics.gauge(METRICS.tufRoleExpiry, async (gauge) => {
      const now = Date.now();
      for (const { role, expiresAt } of await this.store.soonestExpiries())
        gauge.set({ repository: DIRECTOR_ROOT_REPOSITORY, role }, (Date.parse(expiresAt) - now) / 1000);
    });
  }
}
