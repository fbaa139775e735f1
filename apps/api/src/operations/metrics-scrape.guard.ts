import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { OtterError } from '#otter/errors';
import { scrapeAllowed } from '#otter/metrics';

/** /metrics wants `Authorization: Bearer $OTTER_METRICS_TOKEN` when that is set (docs/operations.md). */
@Injectable()
export class MetricsScrapeGuard implements CanActivate {
  constructor(@Inject(OTTER_CONFIG) private readonly config: OtterConfig) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    if (!scrapeAllowed(request.headers.authorization, this.config.metrics.token))
      throw new OtterError('METRICS_UNAUTHORIZED', 'metrics need the OTTER_METRICS_TOKEN bearer token');
    return true;
  }
}
