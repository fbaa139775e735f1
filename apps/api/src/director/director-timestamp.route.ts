import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { OtterExceptionFilter } from '#otter/errors';
import { deviceCredentials } from '../devices/device-credentials.js';
import { DirectorPollService } from './director-poll.service.js';

export const DIRECTOR_TIMESTAMP_PATH = '/tuf/director/:nodeId/metadata/timestamp.json';

/**
 * A node's director `timestamp.json` is a plain Fastify route, as the image repository's is: no Nest
 * execution context, guard or pipe on the request every agent makes on every poll (see `make bench`).
 * Errors get the same answers as everywhere else, from the one exception filter. Every other director file
 * goes through DirectorMetadataController.
 */
@Injectable()
export class DirectorTimestampRoute implements OnModuleInit {
  private readonly errors = new OtterExceptionFilter();

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly polls: DirectorPollService,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.get<{ Params: { nodeId: string } }>(DIRECTOR_TIMESTAMP_PATH, async (request, reply) => {
      try {
        const { accessToken, dpop } = deviceCredentials(request, {
          publicUrl: this.config.publicUrl,
          connectionBinding: this.config.dpopConnectionBinding,
        });
        const body = await this.polls.timestamp(accessToken, dpop, request.params.nodeId);
        return await reply
          .header('content-type', 'application/json')
          .header('cache-control', 'private, no-cache')
          .send(body);
      } catch (e) {
        this.errors.respond(e, request, reply);
        return reply;
      }
    });
  }
}
