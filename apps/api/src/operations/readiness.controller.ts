import { Controller, Get } from '@nestjs/common';
import { z } from 'zod';
import type { HealthCheckResult } from '@nestjs/terminus';
import { ApiRoute } from '../api-contract/api-route.js';
import { Readiness } from './readiness.js';

/** @nestjs/terminus's HealthCheckResult. */
const readinessSchema = z
  .object({
    status: z.enum(['ok', 'error', 'shutting_down']),
    info: z.record(z.string(), z.unknown()).optional(),
    error: z.record(z.string(), z.unknown()).optional(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({
    id: 'Readiness',
    example: {
      status: 'ok',
      info: { database: { status: 'up' }, redis: { status: 'up' }, blobs: { status: 'up' } },
      error: {},
      details: { database: { status: 'up' }, redis: { status: 'up' }, blobs: { status: 'up' } },
    },
  });

/** Readiness (`/health` stays liveness): 200 while the database, Redis and the blob store all answer. */
@Controller('readyz')
export class ReadinessController {
  constructor(private readonly readiness: Readiness) {}

  @ApiRoute({
    summary: 'Readiness: 200 while the database, Redis and the blob store answer',
    response: readinessSchema,
    errors: ['NOT_READY'],
  })
  @Get()
  check(): Promise<HealthCheckResult> {
    return this.readiness.check();
  }
}
