import { Inject, Injectable } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import type { NodeIdentityState, ReenrollmentDto } from '#otter/contracts';
import { NodeError } from './node.errors.js';
import { NodeRepository } from './node.repository.js';
import { NodeService } from './node.service.js';

/**
 * The states whose TPM may enroll again into the same node after an admin's `otter node re-enroll`: a board
 * still in service that was re-imaged (its agent state, AK and keys are gone, its TPM is not). A revoked or
 * rejected node's TPM never enrolls again, into any node.
 */
export const REENROLLABLE_STATES: readonly NodeIdentityState[] = ['pending-approval', 'approved', 'active'];

/** Who asks: the management token that authenticated the request. */
export interface Actor {
  tokenId: string;
  name: string;
}

/**
 * Re-enrollment of a re-imaged board, an explicit admin action. It opens a window of OTTER_REENROLL_WINDOW
 * seconds for one node: within it, the next enrollment whose EK is this node's (same EK key and certificate),
 * once it has proven the TPM with ActivateCredential and quoted its boot state, re-pins the AK and PCRs into this
 * node's row (same id, same history) instead of being refused, and closes the window. Nothing else changes
 * until then: the node keeps working if the board is not re-imaged after all.
 */
@Injectable()
export class NodeReenrollmentService {
  constructor(
    private readonly nodes: NodeRepository,
    private readonly nodeService: NodeService,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async open(nodeId: string, actor: Actor): Promise<ReenrollmentDto> {
    const node = await this.nodes.get(nodeId);
    if (!node) throw new NodeError('NODE_NOT_FOUND', 'no such node');
    if (!REENROLLABLE_STATES.includes(node.state)) {
      throw new NodeError(
        'NODE_STATE_INVALID',
        `node is ${node.state}: the TPM of a ${node.state} node never enrolls again`,
      );
    }
    if (!node.ekKeySha256 || !node.ekIssuerSerialSha256) {
      throw new NodeError(
        'NODE_STATE_INVALID',
        "this node's EK key or certificate was never recorded (an enrollment before migration 0005 whose " +
          'record is gone, or a certificate serial another node holds): a re-enrollment could not check that ' +
          'the same TPM comes back',
      );
    }
    const until = new Date(Date.now() + this.config.devices.reenrollWindow * 1000).toISOString();
    const by = `${actor.name} (token ${actor.tokenId})`;
    if (!(await this.nodes.openReenrollment(nodeId, { until, by }, REENROLLABLE_STATES))) {
      throw new NodeError('NODE_STATE_INVALID', 'the node changed state meanwhile: look at it again');
    }
    // Audited as node.reenroll.opened (libs/audit): the row commits with this window, actor and all.
    return { node: await this.nodeService.get(nodeId), reenrollUntil: until };
  }
}
