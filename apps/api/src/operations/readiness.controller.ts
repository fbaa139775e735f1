import { Controller, Get } from '@nestjs/common';
import type { HealthCheckResult } from '@nestjs/terminus';
import { Readiness } from './readiness.js';

/** Readiness (`/health` stays liveness): 200 while the database, Redis and the blob store all answer. */
@Controller('readyz')
export class ReadinessController {
  constructor(private readonly readiness: Readiness) {}

  @Get()
  check(): Promise<HealthCheckResult> {
    return this.readiness.check();
  }
}
