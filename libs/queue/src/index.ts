export { QUEUES, JOBS } from './queues.js';
export { DEFAULT_JOB_OPTIONS } from './job-options.js';
export { createRedisConnection } from './redis-connection.js';
