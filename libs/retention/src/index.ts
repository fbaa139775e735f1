export { RetentionModule } from './retention.module.js';
export { NodeHistoryLimits } from './node-history-limits.js';
export { RetentionService } from './retention.service.js';
export type { PurgeReport } from './retention.service.js';
export type { NodeHistoryTable } from './retention.repository.js';
