import { Body, Controller, Get, Headers, HttpCode, Param, ParseUUIDPipe, Post, Put } from '@nestjs/common';
import { Audited, bodyFields, resultFields } from '#otter/audit';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import type { NodeDto, NodeListDto, ReenrollmentDto } from '#otter/contracts';
import { NodeReenrollmentService, NodeService } from '#otter/nodes';
import { parseBody, requireJson } from '../common/request-body.js';
import { allowRequest } from '../devices/device-requests.js';
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
  ) {}

  @Get('nodes')
  @RequireRole('viewer')
  async list(): Promise<NodeListDto> {
    return { nodes: await this.nodes.list() };
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
