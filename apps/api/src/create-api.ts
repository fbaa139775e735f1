import { NestFactory } from '@nestjs/core';
import multipart from '@fastify/multipart';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import type { OtterConfig } from '#otter/config';
import { ApiModule } from './api.module.js';
import { registerDeferredBodyParsers } from './common/deferred-body.js';

export async function createApi(config: OtterConfig): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(
    ApiModule.forRoot(config),
    new FastifyAdapter({ bodyLimit: 1024 * 1024, trustProxy: true }),
    // Nest's own JSON and form parsers are replaced by registerDeferredBodyParsers.
    { bufferLogs: true, abortOnError: false, bodyParser: false },
  );
  app.useLogger(app.get(Logger));
  registerDeferredBodyParsers(app.getHttpAdapter().getInstance());
  await app.register(multipart, {
    // Images stream straight to the blob store; these limits only bound the text fields and the part count.
    limits: {
      fileSize: config.maxUploadBytes,
      files: 1,
      fields: 8,
      fieldSize: 64 * 1024,
      parts: 9,
      headerPairs: 100,
    },
  });
  app.enableShutdownHooks();
  return app;
}
