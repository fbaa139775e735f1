import { Inject, Injectable } from '@nestjs/common';
import { ATTESTATION_STATUSES, type AttestationStatus } from '#otter/contracts';
import { DB, type Db } from '#otter/db';
import { hasAttestationStatus } from './attestation-status.js';

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
   * Nodes by hardware, state, running version and attestation status, with the node list's definition of the
   * status (hasAttestationStatus) and `freshSince` from the same freshness. One GROUP BY in the order of the
   * nodes_fleet index, which holds every column read: an index-only scan with no sort, in either dialect. Each
   * status is a filtered count (`count(*) FILTER (WHERE ...)`, SQLite 3.30+) rather than a grouping key, so every
   * status of a group is reported, 0 included.
   */
  async counts(freshSince: string): Promise<FleetCount[]> {
    const rows = await this.db
      .selectFrom('nodes')
      .select(['hardware_id', 'state', 'running_version'])
      .select((eb) =>
        ATTESTATION_STATUSES.map((status) =>
          eb.fn
            .countAll<number | string>()
            .filterWhere(hasAttestationStatus(eb, status, freshSince))
            .as(status),
        ),
      )
      .groupBy(['hardware_id', 'state', 'running_version'])
      .execute();
    return rows.flatMap((r) =>
      ATTESTATION_STATUSES.map((status) => ({
        hardwareId: r.hardware_id,
        state: r.state,
        runningVersion: r.running_version,
        attestation: status,
        nodes: Number(r[status]),
      })),
    );
  }
}
