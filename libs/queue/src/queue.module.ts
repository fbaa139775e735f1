import { BullModule } from '@nestjs/bullmq';
import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { OtterConfig } from '#otter/config';
import { DEFAULT_JOB_OPTIONS } from './job-options.js';
import { QueueMetrics } from './queue-metrics.js';

/** BullMQ on the configured Redis, with Otter's prefix, the one set of retry/backoff defaults, and its metrics. */
@Module({})
export class QueueModule {
  static forRoot(config: OtterConfig, ...queues: string[]): DynamicModule {
    return {
      module: QueueModule,
      imports: [
        BullModule.forRoot({
          connection: redisOptions(config.redisUrl),
          prefix: config.queuePrefix,
          defaultJobOptions: DEFAULT_JOB_OPTIONS,
        }),
        BullModule.registerQueue(...queues.map((name) => ({ name }))),
        DiscoveryModule,
      ],
      // Depths of every queue the application registers (here or in a lib's module) and its workers' jobs.
      providers: [QueueMetrics],
      exports: [BullModule, QueueMetrics],
    };
  }
}

/** ioredis options from a redis:// URL; workers need `maxRetriesPerRequest: null` for blocking commands. */
export function redisOptions(url: string): {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls?: object;
  maxRetriesPerRequest: null;
} {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number(u.pathname.slice(1) || 0),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  };
}
