import { readFileSync } from 'node:fs';
import { NestFactory } from '@nestjs/core';
import multipart from '@fastify/multipart';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import type { OtterConfig } from '#otter/config';
import { ApiModule } from './api.module.js';

export async function createApi(config: OtterConfig): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(
    ApiModule.forRoot(config),
    new FastifyAdapter({ bodyLimit: 1024 * 1024, trustProxy: true, ...tlsOptions(config) }),
    { bufferLogs: true, abortOnError: false },
  );
  app.useLogger(app.get(Logger));
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

/**
 * TLS terminated by the api itself (OTTER_TLS_CERT and OTTER_TLS_KEY): device tokens and DPoP proofs, and
 * every management token, then never cross a network in clear even without a proxy in front.
 */
function tlsOptions(config: OtterConfig): {
  https?: { cert: Buffer; key: Buffer; minVersion: 'TLSv1.2' };
} {
  if (!config.tls) return {};
  return {
    https: {
      cert: readFileSync(config.tls.certFile),
      key: readFileSync(config.tls.keyFile),
      minVersion: 'TLSv1.2',
    },
  };
}
