import { Body, Controller, Get, Headers, HttpCode, Post, UseGuards } from '@nestjs/common';
import type { DeviceInstructionsDto } from '#otter/contracts';
import type { NodeRecord } from '#otter/nodes';
import { UpdateProgressService } from '#otter/rollouts';
import { parseBody, requireJson } from '../common/request-body.js';
import { CurrentNode, DeviceAuthGuard } from '../devices/device-auth.guard.js';
import { updateReport } from './rollout-requests.js';

/** A node reports each step of an update, and asks whether it must attest before it can be admitted. */
@Controller('api/v1/devices/me')
@UseGuards(DeviceAuthGuard)
export class DeviceUpdatesController {
  constructor(private readonly progress: UpdateProgressService) {}

  @Post('updates')
  @HttpCode(202)
  async report(
    @CurrentNode() node: NodeRecord,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<void> {
    requireJson(type);
    await this.progress.record(node, parseBody(updateReport, body));
  }

  @Get('instructions')
  instructions(@CurrentNode() node: NodeRecord): Promise<DeviceInstructionsDto> {
    return this.progress.instructions(node.id);
  }
}
