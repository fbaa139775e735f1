import { Controller, Get, Headers, Inject, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ValidationError } from '#otter/errors';
import { BLOB_STORE, type BlobStore } from '#otter/storage';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';
import { ApiRoute } from '../api-contract/api-route.js';
import { tufMetadataSchema } from '../api-contract/tuf-metadata.js';
import { parseRange } from './http-range.js';

const IMMUTABLE = 'public, max-age=31536000, immutable';
const METADATA_FILE = /^(\d{1,10})\.([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.json$/;

/** TUF image repository, exactly the layout a stock tuf-js Updater expects (consistent snapshots). */
@Controller('tuf/image')
export class TufImageController {
  constructor(
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {}

  /** `N.role.json`; `timestamp.json` is served by TimestampRoute. */
  @ApiRoute({
    summary: 'A versioned image repository metadata file (TUF): N.role.json',
    response: { schema: tufMetadataSchema },
    errors: ['VALIDATION_FAILED', 'TUF_METADATA_NOT_FOUND', 'TUF_NOT_INITIALIZED'],
  })
  @Get('metadata/:file')
  async metadata(@Param('file') file: string, @Res() reply: FastifyReply): Promise<void> {
    const m = METADATA_FILE.exec(file);
    if (!m) throw new ValidationError('metadata file names are N.role.json or timestamp.json');
    const body = await this.repository.metadataFile(m[2]!, Number(m[1]));
    await reply.header('content-type', 'application/json').header('cache-control', IMMUTABLE).send(body);
  }

  @ApiRoute({
    summary: 'A target file (an image or a delta) by its consistent-snapshot name, ranges allowed',
    response: { mediaType: 'application/octet-stream', description: 'The whole file.' },
    otherResponses: {
      206: { mediaType: 'application/octet-stream', description: 'The requested range.' },
      416: { description: 'The range is outside the file.' },
    },
    errors: ['VALIDATION_FAILED', 'TUF_TARGET_NOT_FOUND', 'BLOB_NOT_FOUND'],
  })
  @Get('targets/*')
  async target(
    @Param('*') rawPath: string,
    @Headers('range') range: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const segments = rawPath.split('/');
    const last = segments.pop() ?? '';
    const m = /^([0-9a-f]{64})\.(.+)$/.exec(last);
    if (!m) throw new ValidationError('target URLs end in <sha256>.<name>');
    const target = await this.repository.target([...segments, m[2]].join('/'), m[1]!);
    const r = parseRange(range, target.length);
    reply
      .header('cache-control', IMMUTABLE)
      .header('accept-ranges', 'bytes')
      .header('content-type', 'application/octet-stream');
    if (r.kind === 'unsatisfiable') {
      await reply.status(416).header('content-range', `bytes */${target.length}`).send();
      return;
    }
    if (r.kind === 'partial') {
      const stream = await this.blobs.get(target.blobKey, { start: r.start, end: r.end });
      await reply
        .status(206)
        .header('content-range', `bytes ${r.start}-${r.end}/${target.length}`)
        .header('content-length', r.end - r.start + 1)
        .send(stream);
      return;
    }
    const stream = await this.blobs.get(target.blobKey);
    await reply.header('content-length', target.length).send(stream);
  }
}
