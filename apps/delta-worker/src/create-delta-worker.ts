import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { Logger } from 'nestjs-pino';
import type { OtterConfig } from '#otter/config';
import { DeltaWorkerModule } from './delta-worker.module.js';

/** A running delta worker (main.ts, and tests in-process). */
export async function createDeltaWorker(config: OtterConfig): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(DeltaWorkerModule.forRoot(config), {
    bufferLogs: true,
    abortOnError: false,
  });
  app.useLogger(app.get(Logger));
  app.enableShutdownHooks();
  await app.init();
  return app;
}
