export { QUEUES, JOBS } from './queues.js';
export { DEFAULT_JOB_OPTIONS } from './job-options.js';
export { QueueModule, redisOptions } from './queue.module.js';
