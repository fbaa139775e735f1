import { Controller, Get, HttpCode, Post, Query, Req } from '@nestjs/common';
import { Audited } from '#otter/audit';
import type { FastifyRequest } from 'fastify';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import { HARDWARE_ID_PATTERN, type ReleaseDto, type ReleaseListDto } from '#otter/contracts';
import { ValidationError } from '#otter/errors';
import { parseReleaseFields, ReleaseService } from '#otter/releases';
import { StreamsRequestBody } from '../common/request-deadline.js';
import { readReleaseUpload } from './release-upload.reader.js';

@Controller('api/v1/releases')
export class ReleasesController {
  constructor(private readonly releases: ReleaseService) {}

  @Post()
  // The upload streams to the blob store first; ReleaseService writes the row with the release's own row.
  @Audited('release.pushed', { target: { kind: 'release', result: 'id' }, transaction: 'service' })
  @HttpCode(201)
  @RequireRole('release-engineer')
  @StreamsRequestBody()
  async create(@Req() req: FastifyRequest, @CurrentPrincipal() principal: Principal): Promise<ReleaseDto> {
    const upload = await readReleaseUpload(req);
    const fields = parseReleaseFields(upload.fields);
    return this.releases.create(fields, upload.image, principal.name);
  }

  @Get()
  @RequireRole('viewer')
  async list(@Query('hardware') hardware?: string): Promise<ReleaseListDto> {
    if (hardware !== undefined && !HARDWARE_ID_PATTERN.test(hardware))
      throw new ValidationError('hardware: not a valid hardware id');
    return { releases: await this.releases.list(hardware) };
  }
}
