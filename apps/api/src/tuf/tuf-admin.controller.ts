import { Controller, Get, HttpCode, Inject, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import { RequireRole } from '#otter/auth';
import {
  onlineRoleParamSchema,
  publishedRootDtoSchema,
  rootEnvelopeSchema,
  type OnlineRoleName,
  type PublishedRootDto,
  type RootEnvelope,
  type TufOnlineKeyDto,
  type TufOnlineKeysDto,
  tufOnlineKeyDtoSchema,
  tufOnlineKeysDtoSchema,
} from '#otter/contracts';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';
import { ApiRoute } from '../api-contract/api-route.js';
import { JsonBody, ValidParam } from '../api-contract/valid-input.js';
import { TimestampCache } from './timestamp-cache.js';

/** The root ceremony's server side and online key rotation (admin only). */
@Controller('api/v1/tuf/image')
@RequireRole('admin')
export class TufAdminController {
  constructor(
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    private readonly timestamps: TimestampCache,
  ) {}

  @ApiRoute({
    summary: "The image repository's current root",
    response: rootEnvelopeSchema,
    errors: ['TUF_NOT_INITIALIZED', 'TUF_METADATA_NOT_FOUND'],
  })
  @Get('root')
  async root(): Promise<unknown> {
    return this.repository.currentRoot();
  }

  @ApiRoute({
    summary: 'Publish a new image root signed by the offline keys',
    response: publishedRootDtoSchema,
    errors: ['TUF_ROOT_REJECTED', 'TUF_NOT_INITIALIZED', 'TUF_KEY_UNAVAILABLE', 'TUF_CONFLICT'],
  })
  @Post('root')
  @Audited('tuf.root.published', {
    target: { kind: 'tuf-root', result: 'version' },
    changes: resultFields('version', 'expires'),
  })
  @HttpCode(201)
  async publishRoot(@JsonBody(rootEnvelopeSchema) body: RootEnvelope): Promise<PublishedRootDto> {
    const root = await this.repository.publishRoot(body);
    // A new root may name a new timestamp key: a client that just fetched it must not get the held
    // timestamp.json signed by the retired key (it would refuse it until the hold runs out).
    this.timestamps.invalidate();
    return { version: root.version, expires: root.expires };
  }

  @ApiRoute({
    summary: 'The online signing keys the image repository holds',
    response: tufOnlineKeysDtoSchema,
    errors: ['TUF_NOT_INITIALIZED'],
  })
  @Get('online-keys')
  async onlineKeys(): Promise<TufOnlineKeysDto> {
    return { keys: await this.repository.onlineKeys(), next: await this.repository.preferredOnlineKeys() };
  }

  @ApiRoute({
    summary: 'Make a new online key for a role (listed once a new root names it)',
    response: tufOnlineKeyDtoSchema,
    errors: ['TUF_NOT_INITIALIZED', 'TUF_KEY_UNAVAILABLE'],
  })
  @Post('online-keys/:role/rotate')
  @Audited('tuf.key.rotated', { target: { kind: 'tuf-key', param: 'role' }, changes: resultFields('keyId') })
  @HttpCode(201)
  async rotate(@ValidParam('role', onlineRoleParamSchema) role: OnlineRoleName): Promise<TufOnlineKeyDto> {
    return this.repository.rotateOnlineKey(role);
  }
}
