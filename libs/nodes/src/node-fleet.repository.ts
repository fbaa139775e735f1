import { Inject, Injectable } from '@nestjs/common';
import { sql } from 'kysely';
import { DB, type Db } from '#otter/db';

/** A node's attestation status as the fleet metrics count it, from its latest verdict. */
export type AttestationStatus = 'passed' | 'failed' | 'stale' | 'never';

export interface FleetCount {
  hardwareId: string;
  state: string;
  runningVersion: string | null;
  attestation: AttestationStatus;
  nodes: number;
}

/**
 * Read-only aggregates over the whole fleet (the metrics' scrape-time gauges), kept apart from NodeRepository's
 * per-node reads and writes. One statement, whatever the fleet's size.
 */
@Injectable()
export class NodeFleetRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  /**
   * Nodes by hardware, state, running version and attestation status. Each node's latest verdict is one
   * backwards probe of the (node_id, created_at) index: no sort over the verdict history, in either dialect.
   */
  async counts(staleBefore: Date): Promise<FleetCount[]> {
    const cutoff = staleBefore.toISOString();
    const latest = sql<string | null>`(
      select case when v.created_at < ${cutoff} then 'stale' when v.passed = 1 then 'passed' else 'failed' end
      from attestation_verdicts v
      where v.node_id = n.id
      order by v.created_at desc
      limit 1
    )`;
    const rows = await this.db
      .selectFrom((db) =>
        db
          .selectFrom('nodes as n')
          .select(['n.hardware_id', 'n.state', 'n.running_version', latest.as('attestation')])
          .as('f'),
      )
      .select((eb) => [
        'f.hardware_id',
        'f.state',
        'f.running_version',
        sql<AttestationStatus>`coalesce(f.attestation, 'never')`.as('status'),
        eb.fn.countAll<number | string>().as('nodes'),
      ])
      .groupBy(['f.hardware_id', 'f.state', 'f.running_version', sql`coalesce(f.attestation, 'never')`])
      .execute();
    return rows.map((r) => ({
      hardwareId: r.hardware_id,
      state: r.state,
      runningVersion: r.running_version,
      attestation: r.status,
      nodes: Number(r.nodes),
    }));
  }
}
