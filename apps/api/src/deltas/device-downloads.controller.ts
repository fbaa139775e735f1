import { Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { downloadReportSchema, type DownloadReport } from '#otter/contracts';
import { DeltaBuildService } from '#otter/delta-builds';
import type { NodeRecord } from '#otter/nodes';
import { ApiRoute } from '../api-contract/api-route.js';
import { JsonBody } from '../api-contract/valid-input.js';
import { CurrentNode, DeviceAuthGuard } from '../devices/device-auth.guard.js';

/** A node reports how it fetched an image (delta or full, bytes on the wire), for the bytes-saved totals. */
@Controller('api/v1/devices/me')
export class DeviceDownloadsController {
  constructor(private readonly deltas: DeltaBuildService) {}

  @ApiRoute({
    summary: 'A node reports how it fetched an image (delta or full)',
    errors: ['FORBIDDEN', 'NOT_FOUND', 'RELEASE_NOT_FOUND', 'TUF_TARGET_NOT_FOUND'],
  })
  @Post('downloads')
  @HttpCode(202)
  @UseGuards(DeviceAuthGuard)
  async report(
    @CurrentNode() node: NodeRecord,
    @JsonBody(downloadReportSchema) body: DownloadReport,
  ): Promise<void> {
    await this.deltas.recordDownload(node, body);
  }
}
