import { Controller, Get, HttpCode, Post, Put } from '@nestjs/common';
import { Audited, bodyFields, resultFields } from '#otter/audit';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import {
  allowEnrollmentRequestSchema,
  nodeListQuerySchema,
  setNodeLabelsRequestSchema,
  uuidParamSchema,
  type AllowEnrollmentRequest,
  type NodeListQuery,
  type SetNodeLabelsRequest,
  type NodeDetailDto,
  type NodeDto,
  type NodeListDto,
  type ReenrollmentDto,
} from '#otter/contracts';
import type { ErrorCode } from '#otter/errors';
import { NodeReenrollmentService, NodeService, NodeStoryService } from '#otter/nodes';
import { ApiRoute } from '../api-contract/api-route.js';
import {
  nodeDetailDtoSchema,
  nodeDtoSchema,
  nodeListDtoSchema,
  reenrollmentDtoSchema,
} from '#otter/contracts';
import { JsonBody, ValidParam, ValidQuery } from '../api-contract/valid-input.js';
import { NodeDetailService } from './node-detail.service.js';

const NODE = { kind: 'node', param: 'id' } as const;
const NODE_CHANGE_ERRORS: ErrorCode[] = ['NODE_NOT_FOUND', 'NODE_STATE_INVALID'];

/**
 * Operators' node routes. Everything that lets a node in or keeps it out (approve, reject, revoke, re-pin its
 * boot state) needs `admin`: a CI token with `release-engineer` must not be enough to admit a stolen board.
 */
@Controller('api/v1')
export class NodesController {
  constructor(
    private readonly nodes: NodeService,
    private readonly reenrollments: NodeReenrollmentService,
    private readonly stories: NodeStoryService,
    private readonly details: NodeDetailService,
  ) {}

  /** A page of nodes, oldest first, narrowed by the query's filters; `nextCursor` fetches the next page. */
  @ApiRoute({ summary: 'A page of nodes, filtered', response: nodeListDtoSchema, errors: [] })
  @Get('nodes')
  @RequireRole('viewer')
  list(@ValidQuery(nodeListQuerySchema) query: NodeListQuery): Promise<NodeListDto> {
    return this.stories.page(query);
  }

  /** One node's whole story: identity, inventory, attestation and update history, rollouts. */
  @ApiRoute({ summary: "One node's whole story", response: nodeDetailDtoSchema, errors: ['NODE_NOT_FOUND'] })
  @Get('nodes/:id')
  @RequireRole('viewer')
  detail(@ValidParam('id', uuidParamSchema) id: string): Promise<NodeDetailDto> {
    return this.details.detail(id);
  }

  @ApiRoute({
    summary: 'Admit a node waiting for approval',
    response: nodeDtoSchema,
    errors: NODE_CHANGE_ERRORS,
  })
  @Post('nodes/:id/approve')
  @Audited('node.approved', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  approve(@ValidParam('id', uuidParamSchema) id: string): Promise<NodeDto> {
    return this.nodes.approve(id);
  }

  @ApiRoute({
    summary: 'Refuse a node waiting for approval',
    response: nodeDtoSchema,
    errors: NODE_CHANGE_ERRORS,
  })
  @Post('nodes/:id/reject')
  @Audited('node.rejected', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  reject(@ValidParam('id', uuidParamSchema) id: string): Promise<NodeDto> {
    return this.nodes.reject(id);
  }

  @ApiRoute({
    summary: 'Revoke a node: it can no longer authenticate',
    response: nodeDtoSchema,
    errors: NODE_CHANGE_ERRORS,
  })
  @Post('nodes/:id/revoke')
  @Audited('node.revoked', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  revoke(@ValidParam('id', uuidParamSchema) id: string): Promise<NodeDto> {
    return this.nodes.revoke(id);
  }

  @ApiRoute({
    summary: "Re-pin a node's boot state at its next attestation",
    response: nodeDtoSchema,
    errors: NODE_CHANGE_ERRORS,
  })
  @Post('nodes/:id/repin')
  @Audited('node.repinned', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  repin(@ValidParam('id', uuidParamSchema) id: string): Promise<NodeDto> {
    return this.nodes.repin(id);
  }

  /** Lets a re-imaged board's own TPM enroll once more into this node, for OTTER_REENROLL_WINDOW seconds. */
  @ApiRoute({
    summary: 'Let a re-imaged board enroll once more into this node',
    response: reenrollmentDtoSchema,
    errors: NODE_CHANGE_ERRORS,
  })
  @Post('nodes/:id/re-enroll')
  @Audited('node.reenroll.opened', { target: NODE, changes: resultFields('reenrollUntil') })
  @HttpCode(200)
  @RequireRole('admin')
  reenroll(
    @ValidParam('id', uuidParamSchema) id: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<ReenrollmentDto> {
    return this.reenrollments.open(id, principal);
  }

  /** Replaces the node's labels, which rollout selectors match. */
  @ApiRoute({ summary: "Replace a node's labels", response: nodeDtoSchema, errors: ['NODE_NOT_FOUND'] })
  @Put('nodes/:id/labels')
  @Audited('node.labels.set', { target: NODE, changes: resultFields('labels') })
  @RequireRole('release-engineer')
  setLabels(
    @ValidParam('id', uuidParamSchema) id: string,
    @JsonBody(setNodeLabelsRequestSchema) body: SetNodeLabelsRequest,
  ): Promise<NodeDto> {
    return this.nodes.setLabels(id, body.labels);
  }

  @ApiRoute({
    summary: "Pre-approve a TPM's enrollment by its EK",
    errors: ['NODE_STATE_INVALID', 'EK_CERT_MALFORMED'],
  })
  @Post('enrollment-allowlist')
  @Audited('enrollment.allowlist.added', {
    target: { kind: 'allowlist' },
    changes: bodyFields('kind', 'issuer', 'serial', 'value', 'note'),
  })
  @HttpCode(204)
  @RequireRole('admin')
  async allow(@JsonBody(allowEnrollmentRequestSchema) body: AllowEnrollmentRequest): Promise<void> {
    await this.nodes.allow(body);
  }
}
