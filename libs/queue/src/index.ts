export { QUEUES, JOBS } from './queues.js';
export {
  DEFAULT_JOB_OPTIONS,
  deltaJobOptions,
  deltaPublishDelayMs,
  deltaWorkerOptions,
  ROLLOUT_TICK_JOB_OPTIONS,
  ROLLOUT_TICK_DEDUPLICATION_MS,
  RETENTION_PURGE_JOB_OPTIONS,
} from './job-options.js';
export type { DeltaJobTuning } from './job-options.js';
export { QueueModule, redisOptions } from './queue.module.js';
export { QueueMetrics, REPORTED_JOB_STATES } from './queue-metrics.js';
