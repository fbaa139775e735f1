import { Module } from '@nestjs/common';
import { AuditModule } from '#otter/audit';
import { NodeHistoryLimits } from './node-history-limits.js';
import { RetentionRepository } from './retention.repository.js';
import { RetentionService } from './retention.service.js';

/**
 * How long, and how many per node, rows of what devices write are kept. Needs the application's DbModule and
 * ConfigModule. The repositories that write those rows use NodeHistoryLimits; the scheduler runs
 * RetentionService.
 */
@Module({
  imports: [AuditModule],
  providers: [RetentionRepository, NodeHistoryLimits, RetentionService],
  exports: [NodeHistoryLimits, RetentionService],
})
export class RetentionModule {}
