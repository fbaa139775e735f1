import { Injectable, Logger } from '@nestjs/common';
import { issuerSerialSha256 } from '#otter/attestation';
import type { AllowEnrollmentRequest, NodeDto, OtterEventKind } from '#otter/contracts';
import { DeviceTokenService } from '#otter/identity';
import { EventPublisher } from '#otter/events';
import { nodeIds } from './node-events.js';
import { EnrollmentRepository } from './enrollment.repository.js';
import { NodeError } from './node.errors.js';
import { NodeRepository, type NodeRecord } from './node.repository.js';
import { NODE_TRANSITIONS, type NodeTransitionName } from './node-transitions.js';

/** The operator's changes of a node's state, and the event each publishes. */
const NODE_TRANSITION_EVENTS = {
  approve: 'node.approved',
  reject: 'node.rejected',
  revoke: 'node.revoked',
} as const satisfies Partial<Record<NodeTransitionName, OtterEventKind>>;
type OperatorTransition = keyof typeof NODE_TRANSITION_EVENTS;

/** What operators do with nodes: see them, admit or refuse them, revoke them, re-pin their boot state. */
@Injectable()
export class NodeService {
  private readonly logger = new Logger(NodeService.name);

  constructor(
    private readonly nodes: NodeRepository,
    private readonly enrollments: EnrollmentRepository,
    private readonly tokens: DeviceTokenService,
    private readonly publisher: EventPublisher,
  ) {}

  async get(id: string): Promise<NodeDto> {
    return nodeDto(await this.require(id));
  }

  async approve(id: string): Promise<NodeDto> {
    return this.transition(id, 'approve');
  }

  async reject(id: string): Promise<NodeDto> {
    return this.transition(id, 'reject');
  }

  /**
   * Effective at once: the revoked set in Redis is checked on every device request, then the database. The
   * Redis set is written first, so no request sees the node revoked in the database but not there; revoked is
   * terminal in both, so the two never disagree once this returns.
   */
  async revoke(id: string): Promise<NodeDto> {
    await this.require(id);
    await this.tokens.revokeNode(id);
    return this.transition(id, 'revoke');
  }

  /** Accepts the firmware/boot PCR values of the node's latest authentic quote as its new baseline. */
  async repin(id: string): Promise<NodeDto> {
    const node = await this.require(id);
    const latest = await this.nodes.latestVerdict(id);
    if (!latest || Object.keys(latest.pcrValues).length === 0) {
      throw new NodeError('NODE_STATE_INVALID', 'the node has no quote to pin from: ask it to attest first');
    }
    const pinned = Object.fromEntries(
      Object.keys(node.pinnedPcrs).map((p) => [p, latest.pcrValues[p] ?? node.pinnedPcrs[p]!]),
    );
    await this.nodes.update(id, { pinnedPcrs: pinned });
    this.logger.warn({ node: id }, 'boot PCRs re-pinned by an operator');
    return nodeDto((await this.nodes.get(id))!);
  }

  /** Replaces the node's labels (what rollout selectors match); a rollout already started keeps its group. */
  async setLabels(id: string, labels: Record<string, string>): Promise<NodeDto> {
    if (!(await this.nodes.setLabels(id, labels))) throw new NodeError('NODE_NOT_FOUND', 'no such node');
    this.logger.log({ node: id, labels }, 'node labels set');
    return nodeDto((await this.nodes.get(id))!);
  }

  /** Pre-approves a TPM by its EK certificate's issuer + serial (stored as their hash) or its EK public area. */
  async allow(request: AllowEnrollmentRequest): Promise<void> {
    const note = request.note ?? '';
    if (request.kind === 'ek-issuer-serial') {
      const value = issuerSerialSha256(request.issuer, request.serial);
      await this.enrollments.allow('ek-issuer-serial', value, note);
      this.logger.log(
        { issuer: request.issuer, serial: request.serial, value },
        'enrollment allowed by EK certificate issuer + serial',
      );
      return;
    }
    await this.enrollments.allow('ek-public-sha256', request.value.toLowerCase(), note);
  }

  private async transition(id: string, name: OperatorTransition): Promise<NodeDto> {
    const transition = NODE_TRANSITIONS[name];
    const before = await this.require(id);
    if (!(await this.nodes.transition(id, transition))) {
      // Read again: the state that refused the change may be newer than `before`.
      const now = await this.require(id);
      throw new NodeError('NODE_STATE_INVALID', `node is ${now.state}; cannot become ${transition.to}`);
    }
    this.logger.log({ node: id, from: before.state, to: transition.to }, 'node state changed');
    await this.publisher.publish({ kind: NODE_TRANSITION_EVENTS[name], ...nodeIds(before) });
    return nodeDto((await this.nodes.get(id))!);
  }

  private async require(id: string): Promise<NodeRecord> {
    const node = await this.nodes.get(id);
    if (!node) throw new NodeError('NODE_NOT_FOUND', 'no such node');
    return node;
  }
}

/** The operator's view of a node row (its last verdict is kept on the row: no other read). */
export function nodeDto(n: NodeRecord, now = Date.now()): NodeDto {
  const v = n.lastVerdict;
  return {
    id: n.id,
    hardwareId: n.hardwareId,
    state: n.state,
    runningVersion: n.runningVersion,
    lastVerdict: v
      ? {
          passed: v.passed,
          reason: v.reason,
          at: v.at,
          ageSeconds: Math.max(0, Math.round((now - Date.parse(v.at)) / 1000)),
        }
      : null,
    labels: n.labels,
    createdAt: n.createdAt,
    lastSeenAt: n.lastSeenAt,
  };
}
