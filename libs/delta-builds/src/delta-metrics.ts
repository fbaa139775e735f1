import { Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { DELTA_BUILD_STATES } from '#otter/contracts';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { DeltaStatsRepository } from './delta-stats.repository.js';

/** Delta builds by state (outcome) and the bytes deltas save (the api only, computed at scrape time). */
@Injectable()
export class DeltaMetrics implements OnModuleInit {
  constructor(
    private readonly stats: DeltaStatsRepository,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {}

  onModuleInit(): void {
    if (!this.metrics?.fleet) return;
    this.metrics.gauge(METRICS.deltaBuilds, async (gauge) => {
      for (const state of DELTA_BUILD_STATES) gauge.set({ state }, 0);
      for (const { state, builds } of await this.stats.buildsByState()) gauge.set({ state }, builds);
    });
    this.metrics.gauge(METRICS.deltaBuildBytesSaved, async (gauge) => {
      for (const { hardwareId, bytes } of await this.stats.buildBytesSaved())
        gauge.set({ hardware_id: hardwareId }, bytes);
    });
    this.metrics.gauge(METRICS.deltaDownloadBytesSaved, async (gauge) => {
      for (const { hardwareId, bytes } of await this.stats.downloadBytesSaved())
        gauge.set({ hardware_id: hardwareId }, bytes);
    });
  }
}
