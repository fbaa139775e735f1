import { Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import { Audited } from '#otter/audit';
import type { FastifyRequest } from 'fastify';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import {
  hardwareQuerySchema,
  type HardwareQuery,
  type ReleaseDto,
  type ReleaseListDto,
} from '#otter/contracts';
import { parseReleaseFields, ReleaseService } from '#otter/releases';
import { ApiRoute } from '../api-contract/api-route.js';
import { releaseDtoSchema, releaseListDtoSchema, releaseUploadFormSchema } from '#otter/contracts';
import { ValidQuery } from '../api-contract/valid-input.js';
import { StreamsRequestBody } from '../common/request-deadline.js';
import { readReleaseUpload } from './release-upload.reader.js';

@Controller('api/v1/releases')
export class ReleasesController {
  constructor(private readonly releases: ReleaseService) {}

  @ApiRoute({
    summary: 'Push a release: an image and its reference measurements (multipart)',
    requestBody: { mediaType: 'multipart/form-data', schema: releaseUploadFormSchema },
    response: releaseDtoSchema,
    errors: [
      'RELEASE_DUPLICATE',
      'RELEASE_INVALID',
      'UPLOAD_ABORTED',
      'TUF_NOT_INITIALIZED',
      'TUF_KEY_UNAVAILABLE',
      'TUF_CONFLICT',
    ],
  })
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

  @ApiRoute({ summary: 'Releases, newest first', response: releaseListDtoSchema })
  @Get()
  @RequireRole('viewer')
  async list(@ValidQuery(hardwareQuerySchema) query: HardwareQuery): Promise<ReleaseListDto> {
    return { releases: await this.releases.list(query.hardware) };
  }
}
