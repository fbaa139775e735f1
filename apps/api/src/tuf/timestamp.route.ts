import { Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { TimestampCache } from './timestamp-cache.js';

export const TIMESTAMP_PATH = '/tuf/image/metadata/timestamp.json';

/**
 * `timestamp.json` is the request every agent makes on every poll (a million nodes every 15 minutes is over
 * a thousand a second), so it is a plain Fastify route: no Nest execution context, guards or pipes, which
 * halves its cost (see `make bench`). Everything else under /tuf goes through TufImageController.
 */
@Injectable()
export class TimestampRoute implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly timestamps: TimestampCache,
  ) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.get(TIMESTAMP_PATH, async (request, reply) => {
      const ts = await this.timestamps.get();
      void reply
        .header('content-type', 'application/json')
        .header('cache-control', `public, max-age=${ts.maxAge}`)
        .header('etag', ts.etag);
      const ifNoneMatch = request.headers['if-none-match'];
      if (ifNoneMatch && ifNoneMatch.split(',').some((t) => t.trim() === ts.etag || t.trim() === '*')) {
        return reply.status(304).send();
      }
      return reply.send(ts.body);
    });
  }
}
