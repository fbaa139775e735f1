import { Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { ROLLOUT_STATES } from '#otter/contracts';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { RolloutStatsRepository } from './rollout-stats.repository.js';

/** Rollouts by state and the waves of unfinished ones (the api only, computed at scrape time). */
@Injectable()
export class RolloutMetrics implements OnModuleInit {
  constructor(
    private readonly stats: RolloutStatsRepository,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {}

  onModuleInit(): void {
    if (!this.metrics?.fleet) return;
    this.metrics.gauge(METRICS.rollouts, async (gauge) => {
      // Every state reads 0 when no rollout is in it: an alert on paused rollouts needs the series.
      for (const state of ROLLOUT_STATES) gauge.set({ state }, 0);
      for (const { state, rollouts } of await this.stats.byState()) gauge.set({ state }, rollouts);
    });
    this.metrics.gauge(METRICS.rolloutWaveNodes, async (gauge) => {
      for (const c of await this.stats.unfinishedWaves()) {
        gauge.set(
          { rollout_id: c.rolloutId, rollout_name: c.rolloutName, wave: String(c.wave), state: c.state },
          c.nodes,
        );
      }
    });
  }
}
