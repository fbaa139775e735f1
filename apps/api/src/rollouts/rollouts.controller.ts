import { Body, Controller, Get, Headers, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import type { RolloutDto, RolloutListDto, RolloutNodeDto, RolloutNodeListDto } from '#otter/contracts';
import { RolloutService } from '#otter/rollouts';
import { parseBody, requireJson } from '../common/request-body.js';
import { createRolloutRequest, reasonRequest } from './rollout-requests.js';

const ROLLOUT = { kind: 'rollout', param: 'id' } as const;

@Controller('api/v1/rollouts')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutService) {}

  @Post()
  @Audited('rollout.created', {
    target: { kind: 'rollout', result: 'id' },
    changes: resultFields('name', 'releaseId', 'state'),
  })
  @HttpCode(201)
  @RequireRole('release-engineer')
  create(
    @CurrentPrincipal() who: Principal,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<RolloutDto> {
    requireJson(type);
    return this.rollouts.create(parseBody(createRolloutRequest, body), who.name);
  }

  @Get()
  @RequireRole('viewer')
  async list(): Promise<RolloutListDto> {
    return { rollouts: await this.rollouts.list() };
  }

  @Get(':id')
  @RequireRole('viewer')
  get(@Param('id', new ParseUUIDPipe()) id: string): Promise<RolloutDto> {
    return this.rollouts.get(id);
  }

  @Get(':id/nodes')
  @RequireRole('viewer')
  async nodes(@Param('id', new ParseUUIDPipe()) id: string): Promise<RolloutNodeListDto> {
    return { nodes: await this.rollouts.nodes(id) };
  }

  @Post(':id/start')
  @Audited('rollout.started', { target: ROLLOUT, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  start(@Param('id', new ParseUUIDPipe()) id: string): Promise<RolloutDto> {
    return this.rollouts.start(id);
  }

  @Post(':id/pause')
  @Audited('rollout.paused', { target: ROLLOUT, changes: resultFields('state', 'stateReason') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  pause(
    @CurrentPrincipal() who: Principal,
    @Param('id', new ParseUUIDPipe()) id: string,
    @Body() body: unknown,
  ): Promise<RolloutDto> {
    return this.rollouts.pause(id, parseBody(reasonRequest, body ?? {}).reason, who.name);
  }

  @Post(':id/resume')
  @Audited('rollout.resumed', { target: ROLLOUT, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  resume(@Param('id', new ParseUUIDPipe()) id: string): Promise<RolloutDto> {
    return this.rollouts.resume(id);
  }

  @Post(':id/abort')
  @Audited('rollout.aborted', { target: ROLLOUT, changes: resultFields('state', 'stateReason') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  abort(
    @CurrentPrincipal() who: Principal,
    @Param('id', new ParseUUIDPipe()) id: string,
    @Body() body: unknown,
  ): Promise<RolloutDto> {
    return this.rollouts.abort(id, parseBody(reasonRequest, body ?? {}).reason, who.name);
  }

  @Post(':id/nodes/:nodeId/exclude')
  @Audited('rollout.node.excluded', {
    target: { kind: 'node', param: 'nodeId' },
    changes: resultFields('rolloutId', 'state', 'reason'),
  })
  @HttpCode(200)
  @RequireRole('release-engineer')
  exclude(
    @CurrentPrincipal() who: Principal,
    @Param('id', new ParseUUIDPipe()) id: string,
    @Param('nodeId', new ParseUUIDPipe()) nodeId: string,
    @Body() body: unknown,
  ): Promise<RolloutNodeDto> {
    return this.rollouts.exclude(id, nodeId, parseBody(reasonRequest, body ?? {}).reason, who.name);
  }
}
