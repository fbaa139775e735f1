import { Body, Controller, Headers, HttpCode, Post, UseGuards } from '@nestjs/common';
import { DeltaBuildService } from '#otter/delta-builds';
import type { NodeRecord } from '#otter/nodes';
import { parseBody, requireJson } from '../common/request-body.js';
import { CurrentNode, DeviceAuthGuard } from '../devices/device-auth.guard.js';
import { downloadReport } from './delta-requests.js';

/** A node reports how it fetched an image (delta or full, bytes on the wire), for the bytes-saved totals. */
@Controller('api/v1/devices/me')
export class DeviceDownloadsController {
  constructor(private readonly deltas: DeltaBuildService) {}

  @Post('downloads')
  @HttpCode(202)
  @UseGuards(DeviceAuthGuard)
  async report(
    @CurrentNode() node: NodeRecord,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<void> {
    requireJson(type);
    await this.deltas.recordDownload(node, parseBody(downloadReport, body));
  }
}
