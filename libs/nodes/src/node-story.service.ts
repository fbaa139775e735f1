import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import {
  NODE_HISTORY_LIMITS,
  type InventoryReceipt,
  type InventoryReport,
  type NodeDetailDto,
  type NodeListDto,
  type NodeListQuery,
  type VerdictSummaryDto,
} from '#otter/contracts';
import { attestationStatus, freshSince } from './attestation-status.js';
import { decodeNodeCursor, encodeNodeCursor } from './node-cursor.js';
import { NodeError } from './node.errors.js';
import { NodeInventoryRepository } from './node-inventory.repository.js';
import { NodeListRepository } from './node-list.repository.js';
import { NodeRepository, type NodeRecord, type VerdictRecord } from './node.repository.js';
import { nodeDto } from './node.service.js';

/** A node's story as this lib knows it; the api adds what other libs know (downloads, rollouts). */
export type NodeStory = Omit<NodeDetailDto, 'rollouts' | 'updates' | 'audit'> & {
  updates: { steps: NodeDetailDto['updates']['steps'] };
};

/**
 * Reading a fleet and one node's whole story: pages of nodes with filters, one node's identity, inventory,
 * attestation and update history; and storing the inventory its agent reports.
 */
@Injectable()
export class NodeStoryService {
  constructor(
    private readonly nodes: NodeRepository,
    private readonly list: NodeListRepository,
    private readonly inventories: NodeInventoryRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async page(query: NodeListQuery, now = Date.now()): Promise<NodeListDto> {
    const ago = (seconds: number) => new Date(now - seconds * 1000).toISOString();
    const page = await this.list.page(
      {
        hardwareId: query.hardware,
        state: query.state,
        runningVersion: query.version,
        labels: query.label,
        attestation: query.attestation && {
          status: query.attestation,
          freshSince: freshSince(this.config.devices.attestationFreshness, now),
        },
        seenSince: query.seenWithin === undefined ? undefined : ago(query.seenWithin),
        notSeenSince: query.notSeenFor === undefined ? undefined : ago(query.notSeenFor),
        idPrefix: query.q,
      },
      query.cursor === undefined ? undefined : decodeNodeCursor(query.cursor),
      query.limit,
    );
    return {
      nodes: page.nodes.map((n) => nodeDto(n, now)),
      nextCursor: page.next && encodeNodeCursor(page.next),
    };
  }

  async story(id: string, now = Date.now()): Promise<NodeStory> {
    const node = await this.nodes.get(id);
    if (!node) throw new NodeError('NODE_NOT_FOUND', 'no such node');
    const [inventory, verdicts, steps] = await Promise.all([
      this.inventories.get(id),
      this.nodes.verdicts(id, NODE_HISTORY_LIMITS.verdicts),
      this.nodes.updateSteps(id, NODE_HISTORY_LIMITS.updateSteps),
    ]);
    const freshness = this.config.devices.attestationFreshness;
    return {
      node: nodeDto(node, now),
      identity: {
        ekCertIssuer: node.ekCertIssuer,
        ekCertSerial: node.ekCertSerial,
        ekKeySha256: node.ekKeySha256,
        akPublicSha256: createHash('sha256').update(node.akPublic).digest('hex'),
        deviceCertSerial: node.deviceCertSerial,
        deviceCertNotAfter: node.deviceCertNotAfter,
      },
      inventory: inventory ?? null,
      attestation: {
        status: attestationStatus(node.lastVerdict, freshness, now),
        freshnessSeconds: freshness,
        last: verdicts[0] ? verdictSummary(verdicts[0]) : null,
        history: verdicts.map(verdictSummary),
      },
      updates: { steps },
    };
  }

  /**
   * Stores the node's inventory as its agent reports it. The hash is Otter's own, of the validated inventory
   * as stored, so two reports of the same inventory hash the same whatever order the agent wrote its keys in.
   */
  async reportInventory(node: NodeRecord, report: InventoryReport): Promise<InventoryReceipt> {
    const json = JSON.stringify(report.inventory);
    const sha256 = createHash('sha256').update(json).digest('hex');
    const receivedAt = new Date().toISOString();
    await this.inventories.put(node.id, {
      value: report.inventory,
      sha256,
      reportedAt: new Date(report.at).toISOString(),
      receivedAt,
    });
    return { sha256, receivedAt };
  }
}

function verdictSummary(v: VerdictRecord): VerdictSummaryDto {
  return {
    passed: v.passed,
    reason: v.reason,
    at: v.createdAt,
    releaseVersion: v.releaseVersion,
    releaseProven: v.releaseProven,
    mismatches: v.mismatches,
  };
}
