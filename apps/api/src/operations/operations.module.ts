import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { MetricsController } from './metrics.controller.js';
import { MetricsScrapeGuard } from './metrics-scrape.guard.js';
import { ReadinessController } from './readiness.controller.js';
import { Readiness } from './readiness.js';

/** What a monitoring stack and an orchestrator read: `/metrics` and `/readyz` (docs/operations.md). */
@Module({
  // Readiness failures are answered (503 naming the part) and logged by the exception filter's caller.
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [MetricsController, ReadinessController],
  providers: [Readiness, MetricsScrapeGuard],
})
export class OperationsModule {}
