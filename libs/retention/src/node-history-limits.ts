import { Inject, Injectable } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import type { Db } from '#otter/db';
import { RetentionRepository, type NodeHistoryTable } from './retention.repository.js';

/** Nodes (per table) whose inserts since their last check one process remembers; the least recent go first. */
const REMEMBERED = 100_000;

/**
 * The per-node caps (OTTER_RETENTION_*_PER_NODE), enforced by the repositories right after their inserts, so a
 * node writing reports, verdicts or downloads in a loop keeps a bounded number of rows between two purges,
 * whatever it does. With slack = a tenth of the cap (rounded up): the node's rows are checked (one index read)
 * on its first insert this process sees and then every `slack` inserts, and trimmed back to the cap (one
 * delete) once they reach cap + slack. A node therefore holds at most cap + slack - 1 rows, plus slack - 1
 * per api replica, plus rows written in the same millisecond as the last one kept; with a cap up to 10,
 * exactly the cap. An attestation pays a Map lookup, and a read every slack-th time: checking on every insert cost about
 * a tenth of the attestation path on SQLite.
 */
@Injectable()
export class NodeHistoryLimits {
  private readonly insertsSinceCheck = new Map<string, number>();

  constructor(
    private readonly retention: RetentionRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  /** The limits over a database without Nest (repository specs and tools that build repositories by hand). */
  static over(db: Db, config: OtterConfig): NodeHistoryLimits {
    return new NodeHistoryLimits(new RetentionRepository(db), config);
  }

  async afterInsert(table: NodeHistoryTable, nodeId: string): Promise<void> {
    const cap = this.perNode(table);
    const slack = Math.ceil(cap / 10);
    const key = `${table}:${nodeId}`;
    const seen = this.insertsSinceCheck.get(key);
    this.insertsSinceCheck.delete(key);
    if (seen !== undefined && seen + 1 < slack) {
      this.insertsSinceCheck.set(key, seen + 1);
      return;
    }
    if (this.insertsSinceCheck.size >= REMEMBERED)
      this.insertsSinceCheck.delete(this.insertsSinceCheck.keys().next().value!);
    this.insertsSinceCheck.set(key, 0);
    await this.retention.keepNewest(table, nodeId, cap, slack);
  }

  private perNode(table: NodeHistoryTable): number {
    const r = this.config.retention;
    if (table === 'device_reports') return r.reports.perNode;
    if (table === 'attestation_verdicts') return r.verdicts.perNode;
    return r.downloads.perNode;
  }
}
