import { Inject, Injectable } from '@nestjs/common';
import { DB, type Db } from '#otter/db';
import { UNFINISHED } from './rollout-states.js';

export interface WaveStateCount {
  rolloutId: string;
  rolloutName: string;
  wave: number;
  state: string;
  nodes: number;
}

/** Read-only aggregates over every rollout (the metrics' scrape-time gauges). */
@Injectable()
export class RolloutStatsRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  async byState(): Promise<Array<{ state: string; rollouts: number }>> {
    const rows = await this.db
      .selectFrom('rollouts')
      .select((eb) => ['state', eb.fn.countAll<number | string>().as('n')])
      .groupBy('state')
      .execute();
    return rows.map((r) => ({ state: r.state, rollouts: Number(r.n) }));
  }

  /**
   * Nodes by wave and state of the rollouts that are not over: finished ones would only grow the series. The
   * counts are one range of the (rollout_id, wave, state) index per unfinished rollout, grouped in its order
   * (no sort, no row of a finished rollout read); the names are joined to the few groups afterwards.
   */
  async unfinishedWaves(): Promise<WaveStateCount[]> {
    const rows = await this.db
      .selectFrom((db) =>
        db
          .selectFrom('rollout_nodes as rn')
          .where('rn.rollout_id', 'in', (eb) =>
            eb.selectFrom('rollouts').select('id').where('state', 'in', UNFINISHED),
          )
          .select((eb) => ['rn.rollout_id', 'rn.wave', 'rn.state', eb.fn.countAll<number | string>().as('n')])
          .groupBy(['rn.rollout_id', 'rn.wave', 'rn.state'])
          .as('w'),
      )
      .innerJoin('rollouts as r', 'r.id', 'w.rollout_id')
      .select(['w.rollout_id', 'r.name', 'w.wave', 'w.state', 'w.n'])
      .execute();
    return rows.map((r) => ({
      rolloutId: r.rollout_id,
      rolloutName: r.name,
      wave: Number(r.wave),
      state: r.state,
      nodes: Number(r.n),
    }));
  }
}
