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

  /** Nodes by wave and state of the rollouts that are not over: finished ones would only grow the series. */
  async unfinishedWaves(): Promise<WaveStateCount[]> {
    const rows = await this.db
      .selectFrom('rollout_nodes as rn')
      .innerJoin('rollouts as r', 'r.id', 'rn.rollout_id')
      .where('r.state', 'in', UNFINISHED)
      .select((eb) => [
        'rn.rollout_id',
        'r.name',
        'rn.wave',
        'rn.state',
        eb.fn.countAll<number | string>().as('n'),
      ])
      .groupBy(['rn.rollout_id', 'r.name', 'rn.wave', 'rn.state'])
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
