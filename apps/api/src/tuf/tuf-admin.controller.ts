import { Body, Controller, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { z } from 'zod';
import { RequireRole } from '#otter/auth';
import type { PublishedRootDto, TufOnlineKeyDto, TufOnlineKeysDto } from '#otter/contracts';
import { ValidationError } from '#otter/errors';
import { IMAGE_REPOSITORY, ONLINE_ROLES, type TufRepository } from '#otter/tuf';
import { TimestampCache } from './timestamp-cache.js';

const envelopeSchema = z
  .object({
    signatures: z
      .array(
        z
          .object({ keyid: z.string().regex(/^[0-9a-f]{64}$/), sig: z.string().regex(/^[0-9a-f]+$/) })
          .strict(),
      )
      .max(64),
    signed: z.record(z.string(), z.unknown()),
  })
  .strict();

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
  @HttpCode(201)
  async publishRoot(@Body() body: unknown): Promise<PublishedRootDto> {
    const parsed = envelopeSchema.safeParse(body);
    if (!parsed.success) {
      throw new ValidationError(
        `root: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`,
      );
    }
    const root = await this.repository.publishRoot(parsed.data);
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
  @HttpCode(201)
  async rotate(@Param('role') role: string): Promise<TufOnlineKeyDto> {
    const r = ONLINE_ROLES.find((x) => x === role);
    if (!r) throw new ValidationError(`role must be one of ${ONLINE_ROLES.join(', ')}`);
    return this.repository.rotateOnlineKey(r);
  }
}
