import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Logger } from 'nestjs-pino';
import { loadConfig } from '#otter/config';
import { DeltaWorkerModule } from './delta-worker.module.js';

const app = await NestFactory.createApplicationContext(DeltaWorkerModule.forRoot(loadConfig()), {
  bufferLogs: true,
});
app.useLogger(app.get(Logger));
app.enableShutdownHooks();
await app.init();
app.get(Logger).log('delta-worker started');
