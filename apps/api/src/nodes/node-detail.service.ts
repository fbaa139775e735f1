import { Injectable } from '@nestjs/common';
import { AuditService } from '#otter/audit';
import { NODE_HISTORY_LIMITS, type NodeDetailDto } from '#otter/contracts';
import { DeltaBuildService } from '#otter/delta-builds';
import { NodeStoryService } from '#otter/nodes';
import { RolloutService } from '#otter/rollouts';

/**
 * One node's whole story, from the libs that each know a part of it: the node lib (identity, inventory,
 * verdicts, update steps), the delta builds lib (downloads), the rollouts lib (memberships) and the audit lib
 * (who acted on the node).
 */
@Injectable()
export class NodeDetailService {
  constructor(
    private readonly stories: NodeStoryService,
    private readonly deltas: DeltaBuildService,
    private readonly rollouts: RolloutService,
    private readonly audit: AuditService,
  ) {}

  async detail(id: string): Promise<NodeDetailDto> {
    const story = await this.stories.story(id);
    const [downloads, rollouts, audit] = await Promise.all([
      this.deltas.downloadsOf(id, NODE_HISTORY_LIMITS.downloads),
      this.rollouts.membershipsOf(id, NODE_HISTORY_LIMITS.rollouts),
      this.audit.list({ target: `node:${id}`, limit: NODE_HISTORY_LIMITS.auditEntries }),
    ]);
    return { ...story, updates: { steps: story.updates.steps, downloads }, rollouts, audit };
  }
}
