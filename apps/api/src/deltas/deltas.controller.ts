import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import { RequireRole } from '#otter/auth';
import {
  deltaRequestSchema,
  hardwareQuerySchema,
  type DeltaBuildDto,
  type DeltaBuildListDto,
  type DeltaRequest,
  type HardwareQuery,
  type SavingsDto,
} from '#otter/contracts';
import { DeltaBuildService } from '#otter/delta-builds';
import { ApiRoute } from '../api-contract/api-route.js';
import { deltaBuildDtoSchema, deltaBuildListDtoSchema, savingsDtoSchema } from '#otter/contracts';
import { JsonBody, ValidQuery } from '../api-contract/valid-input.js';

@Controller('api/v1')
export class DeltasController {
  constructor(private readonly deltas: DeltaBuildService) {}

  /** 202: the build is queued (or already exists: the same pair returns the existing build). */
  @ApiRoute({
    summary: 'Queue a delta build between two releases (or get the existing one)',
    response: deltaBuildDtoSchema,
    errors: ['RELEASE_NOT_FOUND', 'DELTA_SOURCE_MISMATCH'],
  })
  @Post('deltas')
  @Audited('delta.requested', {
    target: { kind: 'delta', result: 'id' },
    changes: resultFields('hardwareId', 'from', 'to', 'state'),
  })
  @HttpCode(202)
  @RequireRole('release-engineer')
  request(@JsonBody(deltaRequestSchema) body: DeltaRequest): Promise<DeltaBuildDto> {
    return this.deltas.request(body);
  }

  @ApiRoute({ summary: 'Delta builds, newest first', response: deltaBuildListDtoSchema })
  @Get('deltas')
  @RequireRole('viewer')
  async list(@ValidQuery(hardwareQuerySchema) query: HardwareQuery): Promise<DeltaBuildListDto> {
    return { deltas: await this.deltas.list(query.hardware) };
  }

  @ApiRoute({ summary: 'Bytes saved by deltas, per release and per node', response: savingsDtoSchema })
  @Get('savings')
  @RequireRole('viewer')
  savings(@ValidQuery(hardwareQuerySchema) query: HardwareQuery): Promise<SavingsDto> {
    return this.deltas.savings(query.hardware);
  }
}
