import { Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { DELTA_BUILD_STATES } from '#otter/contracts';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { DeltaStatsRepository } from './delta-stats.repository.js';

/** Delta builds by state (outcome) and the bytes deltas save (gauges: the api only, computed at scrape time). */
@Injectable()
export class DeltaMetrics implements OnModuleInit {
  constructor(
    private readonly stats: DeltaStatsRepository,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {}

  onModuleInit(): void {
    this.metrics?.counter(METRICS.deltaDownloadBytesSaved);
    if (!this.metrics?.fleet) return;
    this.metrics.gauge(METRICS.deltaBuilds, async (gauge) => {
      for (const state of DELTA_BUILD_STATES) gauge.set({ state }, 0);
      for (const { state, builds } of await this.stats.buildsByState()) gauge.set({ state }, builds);
    });
    this.metrics.gauge(METRICS.deltaBuildBytesSaved, async (gauge) => {
      for (const { hardwareId, bytes } of await this.stats.buildBytesSaved())
        gauge.set({ hardware_id: hardwareId }, bytes);
    });
  }

  /**
   * A download report recorded. Counted here rather than summed over the downloads table at scrape time:
   * that table holds up to a thousand rows per node, far too many to add up on every scrape.
   */
  downloaded(hardwareId: string, fullBytes: number, bytesDownloaded: number): void {
    this.metrics
      ?.counter(METRICS.deltaDownloadBytesSaved)
      .inc({ hardware_id: hardwareId }, Math.max(0, fullBytes - bytesDownloaded));
  }
}
