import { Body, Controller, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import { RequireRole } from '#otter/auth';
import type { PublishedRootDto, TufOnlineKeyDto, TufOnlineKeysDto } from '#otter/contracts';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';
import { parseBody } from '../common/request-body.js';
import { onlineRoleParam, rootEnvelope } from './ceremony-input.js';
import { TimestampCache } from './timestamp-cache.js';

/** The root ceremony's server side and online key rotation (admin only). */
@Controller('api/v1/tuf/image')
@RequireRole('admin')
export class TufAdminController {
  constructor(
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    private readonly timestamps: TimestampCache,
  ) {}

  @Get('root')
  async root(): Promise<unknown> {
    return this.repository.currentRoot();
  }

  @Post('root')
  @Audited('tuf.root.published', {
    target: { kind: 'tuf-root', result: 'version' },
    changes: resultFields('version', 'expires'),
  })
  @HttpCode(201)
  async publishRoot(@Body() body: unknown): Promise<PublishedRootDto> {
    const root = await this.repository.publishRoot(parseBody(rootEnvelope, body));
    // A new root may name a new timestamp key: a client that just fetched it must not get the held
    // timestamp.json signed by the retired key (it would refuse it until the hold runs out).
    this.timestamps.invalidate();
    return { version: root.version, expires: root.expires };
  }

  @Get('online-keys')
  async onlineKeys(): Promise<TufOnlineKeysDto> {
    return { keys: await this.repository.onlineKeys(), next: await this.repository.preferredOnlineKeys() };
  }

  @Post('online-keys/:role/rotate')
  @Audited('tuf.key.rotated', { target: { kind: 'tuf-key', param: 'role' }, changes: resultFields('keyId') })
  @HttpCode(201)
  async rotate(@Param('role') role: string): Promise<TufOnlineKeyDto> {
    return this.repository.rotateOnlineKey(onlineRoleParam(role));
  }
}
