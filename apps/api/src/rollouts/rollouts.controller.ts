import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import {
  createRolloutRequestSchema,
  reasonRequestSchema,
  uuidParamSchema,
  type CreateRolloutRequest,
  type ReasonRequest,
  type RolloutDto,
  type RolloutListDto,
  type RolloutNodeDto,
  type RolloutNodeListDto,
} from '#otter/contracts';
import type { ErrorCode } from '#otter/errors';
import { RolloutService } from '#otter/rollouts';
import { ApiRoute } from '../api-contract/api-route.js';
import {
  rolloutDtoSchema,
  rolloutListDtoSchema,
  rolloutNodeDtoSchema,
  rolloutNodeListDtoSchema,
} from '#otter/contracts';
import { JsonBody, ValidParam } from '../api-contract/valid-input.js';

const ROLLOUT = { kind: 'rollout', param: 'id' } as const;
const ROLLOUT_CHANGE_ERRORS: ErrorCode[] = [
  'ROLLOUT_NOT_FOUND',
  'ROLLOUT_INVALID',
  'ROLLOUT_STATE_INVALID',
  'ROLLOUT_CONFLICT',
];

@Controller('api/v1/rollouts')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutService) {}

  @ApiRoute({
    summary: 'Create a rollout (draft)',
    response: rolloutDtoSchema,
    errors: ['ROLLOUT_INVALID', 'RELEASE_NOT_FOUND', 'ROLLOUT_RELEASE_UNMEASURED', 'ROLLOUT_CONFLICT'],
  })
  @Post()
  @Audited('rollout.created', {
    target: { kind: 'rollout', result: 'id' },
    changes: resultFields('name', 'releaseId', 'state'),
  })
  @HttpCode(201)
  @RequireRole('release-engineer')
  create(
    @CurrentPrincipal() who: Principal,
    @JsonBody(createRolloutRequestSchema) body: CreateRolloutRequest,
  ): Promise<RolloutDto> {
    return this.rollouts.create(body, who.name);
  }

  @ApiRoute({ summary: 'Rollouts', response: rolloutListDtoSchema })
  @Get()
  @RequireRole('viewer')
  async list(): Promise<RolloutListDto> {
    return { rollouts: await this.rollouts.list() };
  }

  @ApiRoute({
    summary: 'One rollout with its per-wave progress',
    response: rolloutDtoSchema,
    errors: ['ROLLOUT_NOT_FOUND'],
  })
  @Get(':id')
  @RequireRole('viewer')
  get(@ValidParam('id', uuidParamSchema) id: string): Promise<RolloutDto> {
    return this.rollouts.get(id);
  }

  @ApiRoute({
    summary: "A rollout's nodes and where each is",
    response: rolloutNodeListDtoSchema,
    errors: ['ROLLOUT_NOT_FOUND'],
  })
  @Get(':id/nodes')
  @RequireRole('viewer')
  async nodes(@ValidParam('id', uuidParamSchema) id: string): Promise<RolloutNodeListDto> {
    return { nodes: await this.rollouts.nodes(id) };
  }

  @ApiRoute({
    summary: 'Start a draft rollout',
    response: rolloutDtoSchema,
    errors: [...ROLLOUT_CHANGE_ERRORS, 'ROLLOUT_RELEASE_UNMEASURED'],
  })
  @Post(':id/start')
  @Audited('rollout.started', { target: ROLLOUT, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  start(@ValidParam('id', uuidParamSchema) id: string): Promise<RolloutDto> {
    return this.rollouts.start(id);
  }

  @ApiRoute({
    summary: 'Pause a running rollout, with a reason',
    response: rolloutDtoSchema,
    errors: ROLLOUT_CHANGE_ERRORS,
  })
  @Post(':id/pause')
  @Audited('rollout.paused', { target: ROLLOUT, changes: resultFields('state', 'stateReason') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  pause(
    @CurrentPrincipal() who: Principal,
    @ValidParam('id', uuidParamSchema) id: string,
    @JsonBody(reasonRequestSchema, { optional: true }) body: ReasonRequest,
  ): Promise<RolloutDto> {
    return this.rollouts.pause(id, body.reason, who.name);
  }

  @ApiRoute({ summary: 'Resume a paused rollout', response: rolloutDtoSchema, errors: ROLLOUT_CHANGE_ERRORS })
  @Post(':id/resume')
  @Audited('rollout.resumed', { target: ROLLOUT, changes: resultFields('state') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  resume(@ValidParam('id', uuidParamSchema) id: string): Promise<RolloutDto> {
    return this.rollouts.resume(id);
  }

  @ApiRoute({
    summary: 'Abort a rollout, with a reason',
    response: rolloutDtoSchema,
    errors: ROLLOUT_CHANGE_ERRORS,
  })
  @Post(':id/abort')
  @Audited('rollout.aborted', { target: ROLLOUT, changes: resultFields('state', 'stateReason') })
  @HttpCode(200)
  @RequireRole('release-engineer')
  abort(
    @CurrentPrincipal() who: Principal,
    @ValidParam('id', uuidParamSchema) id: string,
    @JsonBody(reasonRequestSchema, { optional: true }) body: ReasonRequest,
  ): Promise<RolloutDto> {
    return this.rollouts.abort(id, body.reason, who.name);
  }

  @ApiRoute({
    summary: 'Take one node out of a rollout',
    response: rolloutNodeDtoSchema,
    errors: [...ROLLOUT_CHANGE_ERRORS, 'ROLLOUT_NODE_NOT_FOUND'],
  })
  @Post(':id/nodes/:nodeId/exclude')
  @Audited('rollout.node.excluded', {
    target: { kind: 'node', param: 'nodeId' },
    changes: resultFields('rolloutId', 'state', 'reason'),
  })
  @HttpCode(200)
  @RequireRole('release-engineer')
  exclude(
    @CurrentPrincipal() who: Principal,
    @ValidParam('id', uuidParamSchema) id: string,
    @ValidParam('nodeId', uuidParamSchema) nodeId: string,
    @JsonBody(reasonRequestSchema, { optional: true }) body: ReasonRequest,
  ): Promise<RolloutNodeDto> {
    return this.rollouts.exclude(id, nodeId, body.reason, who.name);
  }
}
