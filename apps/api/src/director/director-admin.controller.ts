import { Controller, Get, HttpCode, Post } from '@nestjs/common';
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
import { DirectorRepository } from '#otter/director';
import { z } from 'zod';
import { ApiRoute } from '../api-contract/api-route.js';
import { JsonBody, ValidParam } from '../api-contract/valid-input.js';

/** The director's root ceremony (server side), online key rotation and recovery after a restore. */
@Controller('api/v1/tuf/director')
@RequireRole('admin')
export class DirectorAdminController {
  constructor(private readonly director: DirectorRepository) {}

  @ApiRoute({
    summary: "The director repository's current root",
    response: rootEnvelopeSchema,
    errors: ['DIRECTOR_NOT_INITIALIZED', 'DIRECTOR_METADATA_NOT_FOUND'],
  })
  @Get('root')
  async root(): Promise<unknown> {
    return this.director.currentRoot();
  }

  @ApiRoute({
    summary: 'Publish a new director root signed by the offline keys',
    response: publishedRootDtoSchema,
    errors: ['DIRECTOR_ROOT_REJECTED', 'DIRECTOR_NOT_INITIALIZED', 'DIRECTOR_KEY_UNAVAILABLE'],
  })
  @Post('root')
  @Audited('director.root.published', {
    target: { kind: 'director', result: 'version' },
    changes: resultFields('version', 'expires'),
  })
  @HttpCode(201)
  async publishRoot(@JsonBody(rootEnvelopeSchema) body: RootEnvelope): Promise<PublishedRootDto> {
    const root = await this.director.publishRoot(body);
    return { version: root.version, expires: root.expires };
  }

  @ApiRoute({
    summary: 'The online signing keys the director repository holds',
    response: tufOnlineKeysDtoSchema,
    errors: ['DIRECTOR_NOT_INITIALIZED'],
  })
  @Get('online-keys')
  async onlineKeys(): Promise<TufOnlineKeysDto> {
    return { keys: await this.director.onlineKeys(), next: await this.director.preferredOnlineKeys() };
  }

  @ApiRoute({
    summary: 'Make a new online key for a role (listed once a new root names it)',
    response: tufOnlineKeyDtoSchema,
    errors: ['DIRECTOR_NOT_INITIALIZED', 'DIRECTOR_KEY_UNAVAILABLE'],
  })
  @Post('online-keys/:role/rotate')
  @Audited('director.key.rotated', {
    target: { kind: 'tuf-key', param: 'role' },
    changes: resultFields('keyId'),
  })
  @HttpCode(201)
  async rotate(@ValidParam('role', onlineRoleParamSchema) role: OnlineRoleName): Promise<TufOnlineKeyDto> {
    return this.director.rotateOnlineKey(role);
  }

  /** After restoring a database backup: every node's metadata is re-signed, with a newer version, on its next poll. */
  @ApiRoute({
    summary: "Re-sign every node's director metadata on its next poll (after a restore)",
    response: z.object({ nodes: z.number() }).meta({ example: { nodes: 1250 } }),
    errors: ['DIRECTOR_NOT_INITIALIZED'],
  })
  @Post('metadata/invalidate')
  @Audited('director.metadata.invalidated', { target: { kind: 'director' }, changes: resultFields('nodes') })
  @HttpCode(200)
  async invalidate(): Promise<{ nodes: number }> {
    return { nodes: await this.director.invalidateAll() };
  }
}
