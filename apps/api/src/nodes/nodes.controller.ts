import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Put,
  Query,
} from '@nestjs/common';
import { Audited, bodyFields, resultFields } from '#otter/audit';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import {
  nodeListQuerySchema,
  type NodeDetailDto,
  type NodeDto,
  type NodeListDto,
  type ReenrollmentDto,
} from '#otter/contracts';
import { NodeReenrollmentService, NodeService, NodeStoryService } from '#otter/nodes';
import { parseBody, requireJson } from '../common/request-body.js';
import { parseQuery } from '../common/request-query.js';
import { allowRequest } from '../devices/device-requests.js';
import { NodeDetailService } from './node-detail.service.js';
import { setLabelsRequest } from './node-requests.js';

const NODE = { kind: 'node', param: 'id' } as const;

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
  @Get('nodes')
  @RequireRole('viewer')
  list(@Query() query: unknown): Promise<NodeListDto> {
    return this.stories.page(parseQuery(nodeListQuerySchema, query));
  }

  /** One node's whole story: identity, inventory, attestation and update history, rollouts. */
  @Get('nodes/:id')
  @RequireRole('viewer')
  detail(@Param('id', new ParseUUIDPipe()) id: string): Promise<NodeDetailDto> {
    return this.details.detail(id);
  }

  @Post('nodes/:id/approve')
  @Audited('node.approved', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  approve(@Param('id', new ParseUUIDPipe()) id: string): Promise<NodeDto> {
    return this.nodes.approve(id);
  }

  @Post('nodes/:id/reject')
  @Audited('node.rejected', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  reject(@Param('id', new ParseUUIDPipe()) id: string): Promise<NodeDto> {
    return this.nodes.reject(id);
  }

  @Post('nodes/:id/revoke')
  @Audited('node.revoked', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  revoke(@Param('id', new ParseUUIDPipe()) id: string): Promise<NodeDto> {
    return this.nodes.revoke(id);
  }

  @Post('nodes/:id/repin')
  @Audited('node.repinned', { target: NODE, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('admin')
  repin(@Param('id', new ParseUUIDPipe()) id: string): Promise<NodeDto> {
    return this.nodes.repin(id);
  }

  /** Lets a re-imaged board's own TPM enroll once more into this node, for OTTER_REENROLL_WINDOW seconds. */
  @Post('nodes/:id/re-enroll')
  @Audited('node.reenroll.opened', { target: NODE, changes: resultFields('reenrollUntil') })
  @HttpCode(200)
  @RequireRole('admin')
  reenroll(
    @Param('id', new ParseUUIDPipe()) id: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<ReenrollmentDto> {
    return this.reenrollments.open(id, principal);
  }

  /** Replaces the node's labels, which rollout selectors match. */
  @Put('nodes/:id/labels')
  @Audited('node.labels.set', { target: NODE, changes: resultFields('labels') })
  @RequireRole('release-engineer')
  setLabels(
    @Param('id', new ParseUUIDPipe()) id: string,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<NodeDto> {
    requireJson(type);
    return this.nodes.setLabels(id, parseBody(setLabelsRequest, body).labels);
  }

  @Post('enrollment-allowlist')
  @Audited('enrollment.allowlist.added', {
    target: { kind: 'allowlist' },
    changes: bodyFields('kind', 'issuer', 'serial', 'value', 'note'),
  })
  @HttpCode(204)
  @RequireRole('admin')
  async allow(@Headers('content-type') type: string | undefined, @Body() body: unknown): Promise<void> {
    requireJson(type);
    await this.nodes.allow(parseBody(allowRequest, body));
  }
}
