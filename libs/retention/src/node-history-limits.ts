import { Inject, Injectable } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { RetentionRepository, type NodeHistoryTable } from './retention.repository.js';

/**
 * The per-node caps (OTTER_RETENTION_*_PER_NODE), enforced by the repositories right after each insert, so a
 * node writing reports, verdicts or downloads in a loop keeps a bounded number of rows between two purges,
 * whatever it does. Costs one delete walking at most the cap's worth of index entries per insert.
 */
@Injectable()
export class NodeHistoryLimits {
  constructor(
    private readonly retention: RetentionRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async afterInsert(table: NodeHistoryTable, nodeId: string): Promise<void> {
    await this.retention.keepNewest(table, nodeId, this.perNode(table));
  }

  private perNode(table: NodeHistoryTable): number {
    const r = this.config.retention;
    if (table === 'device_reports') return r.reports.perNode;
    if (table === 'attestation_verdicts') return r.verdicts.perNode;
    return r.downloads.perNode;
  }
}
