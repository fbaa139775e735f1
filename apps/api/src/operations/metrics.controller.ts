import { Controller, Get, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { OtterMetrics } from '#otter/metrics';
import { ApiRoute } from '../api-contract/api-route.js';
import { MetricsScrapeGuard } from './metrics-scrape.guard.js';

/** Prometheus text exposition of the api's registry; fleet gauges are computed as it is read. */
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: OtterMetrics) {}

  @ApiRoute({
    summary: 'Prometheus metrics (text exposition)',
    response: { mediaType: 'text/plain; version=0.0.4', description: 'The Prometheus text format.' },
  })
  @Get()
  @UseGuards(MetricsScrapeGuard)
  async scrape(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    const { contentType, body } = await this.metrics.exposition();
    void reply.header('content-type', contentType).header('cache-control', 'no-store');
    return body;
  }
}
