import { Controller, Get, HttpCode, Post, UseGuards } from '@nestjs/common';
import { updateReportSchema, type DeviceInstructionsDto, type UpdateReport } from '#otter/contracts';
import type { NodeRecord } from '#otter/nodes';
import { UpdateProgressService } from '#otter/rollouts';
import { ApiRoute } from '../api-contract/api-route.js';
import { deviceInstructionsDtoSchema } from '#otter/contracts';
import { JsonBody } from '../api-contract/valid-input.js';
import { CurrentNode, DeviceAuthGuard } from '../devices/device-auth.guard.js';

/** A node reports each step of an update, and asks whether it must attest before it can be admitted. */
@Controller('api/v1/devices/me')
@UseGuards(DeviceAuthGuard)
export class DeviceUpdatesController {
  constructor(private readonly progress: UpdateProgressService) {}

  @ApiRoute({
    summary: 'A node reports a step of an update',
    errors: ['NODE_NOT_ADMITTED', 'ROLLOUT_NOT_FOUND', 'ROLLOUT_NODE_NOT_FOUND', 'RELEASE_NOT_FOUND'],
  })
  @Post('updates')
  @HttpCode(202)
  async report(
    @CurrentNode() node: NodeRecord,
    @JsonBody(updateReportSchema) body: UpdateReport,
  ): Promise<void> {
    await this.progress.record(node, body);
  }

  @ApiRoute({
    summary: 'What the node should do besides polling the director',
    response: deviceInstructionsDtoSchema,
  })
  @Get('instructions')
  instructions(@CurrentNode() node: NodeRecord): Promise<DeviceInstructionsDto> {
    return this.progress.instructions(node.id);
  }
}
