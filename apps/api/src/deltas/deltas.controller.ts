import { Body, Controller, Get, Headers, HttpCode, Post, Query } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import { RequireRole } from '#otter/auth';
import {
  HARDWARE_ID_PATTERN,
  type DeltaBuildDto,
  type DeltaBuildListDto,
  type SavingsDto,
} from '#otter/contracts';
import { DeltaBuildService } from '#otter/delta-builds';
import { ValidationError } from '#otter/errors';
import { parseBody, requireJson } from '../common/request-body.js';
import { deltaRequest } from './delta-requests.js';

@Controller('api/v1')
export class DeltasController {
  constructor(private readonly deltas: DeltaBuildService) {}

  /** 202: the build is queued (or already exists: the same pair returns the existing build). */
  @Post('deltas')
  @Audited('delta.requested', {
    target: { kind: 'delta', result: 'id' },
    changes: resultFields('hardwareId', 'from', 'to', 'state'),
  })
  @HttpCode(202)
  @RequireRole('release-engineer')
  request(@Headers('content-type') type: string | undefined, @Body() body: unknown): Promise<DeltaBuildDto> {
    requireJson(type);
    return this.deltas.request(parseBody(deltaRequest, body));
  }

  @Get('deltas')
  @RequireRole('viewer')
  async list(@Query('hardware') hardware?: string): Promise<DeltaBuildListDto> {
    return { deltas: await this.deltas.list(checkHardware(hardware)) };
  }

  @Get('savings')
  @RequireRole('viewer')
  savings(@Query('hardware') hardware?: string): Promise<SavingsDto> {
    return this.deltas.savings(checkHardware(hardware));
  }
}

function checkHardware(hardware: string | undefined): string | undefined {
  if (hardware !== undefined && !HARDWARE_ID_PATTERN.test(hardware)) {
    throw new ValidationError('hardware: not a valid hardware id');
  }
  return hardware;
}
