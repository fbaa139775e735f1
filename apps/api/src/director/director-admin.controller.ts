import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import { RequireRole } from '#otter/auth';
import type { PublishedRootDto, TufOnlineKeyDto, TufOnlineKeysDto } from '#otter/contracts';
import { DirectorRepository } from '#otter/director';
import { parseBody } from '../common/request-body.js';
import { onlineRoleParam, rootEnvelope } from '../tuf/ceremony-input.js';

/** The director's root ceremony (server side), online key rotation and recovery after a restore. */
@Controller('api/v1/tuf/director')
@RequireRole('admin')
export class DirectorAdminController {
  constructor(private readonly director: DirectorRepository) {}

  @Get('root')
  async root(): Promise<unknown> {
    return this.director.currentRoot();
  }

  @Post('root')
  @Audited('director.root.published', {
    target: { kind: 'director', result: 'version' },
    changes: resultFields('version', 'expires'),
  })
  @HttpCode(201)
  async publishRoot(@Body() body: unknown): Promise<PublishedRootDto> {
    const root = await this.director.publishRoot(parseBody(rootEnvelope, body));
    return { version: root.version, expires: root.expires };
  }

  @Get('online-keys')
  async onlineKeys(): Promise<TufOnlineKeysDto> {
    return { keys: await this.director.onlineKeys(), next: await this.director.preferredOnlineKeys() };
  }

  @Post('online-keys/:role/rotate')
  @Audited('director.key.rotated', {
    target: { kind: 'tuf-key', param: 'role' },
    changes: resultFields('keyId'),
  })
  @HttpCode(201)
  async rotate(@Param('role') role: string): Promise<TufOnlineKeyDto> {
    return this.director.rotateOnlineKey(onlineRoleParam(role));
  }

  /** After restoring a database backup: every node's metadata is re-signed, with a newer version, on its next poll. */
  @Post('metadata/invalidate')
  @Audited('director.metadata.invalidated', { target: { kind: 'director' }, changes: resultFields('nodes') })
  @HttpCode(200)
  async invalidate(): Promise<{ nodes: number }> {
    return { nodes: await this.director.invalidateAll() };
  }
}
