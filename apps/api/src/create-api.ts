import { readFileSync } from 'node:fs';
import { NestFactory } from '@nestjs/core';
import { ShutdownSignal } from '@nestjs/common';
import multipart from '@fastify/multipart';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Redis } from 'ioredis';
import { Logger } from 'nestjs-pino';
import type { OtterConfig } from '#otter/config';
import { IDENTITY_REDIS } from '#otter/identity';
import { OtterMetrics } from '#otter/metrics';
import { ApiModule } from './api.module.js';
import { registerDeferredBodyParsers } from './common/deferred-body.js';
import { enforceRequestDeadline } from './common/request-deadline.js';
import { registerDeviceRateLimits } from './devices/device-rate-limits.js';
import { recordHttpDurations } from './operations/http-metrics.js';

export async function createApi(config: OtterConfig): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(
    ApiModule.forRoot(config),
    new FastifyAdapter({
      bodyLimit: 1024 * 1024,
      // X-Forwarded-For is believed only from the named proxies: from anyone else it could pick the address
      // the rate limits count and the logs name.
      trustProxy: config.http.trustedProxies.length > 0 ? config.http.trustedProxies : false,
      ...tlsOptions(config),
    }),
    // Nest's own JSON and form parsers are replaced by registerDeferredBodyParsers.
    { bufferLogs: true, abortOnError: false, bodyParser: false },
  );
  app.useLogger(app.get(Logger));
  recordHttpDurations(app.getHttpAdapter().getInstance(), app.get(OtterMetrics));
  enforceRequestDeadline(app.getHttpAdapter().getInstance(), config.http.requestTimeoutSeconds);
  registerDeferredBodyParsers(app.getHttpAdapter().getInstance());
  // The identity services' connection: rate limit counts are shared by every replica through it.
  await registerDeviceRateLimits(app, config, app.get<Redis>(IDENTITY_REDIS, { strict: false }));
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
  // SIGHUP reloads the trusted TPM manufacturer CAs (TrustedTpmCas); every other signal Nest knows stops.
  app.enableShutdownHooks(Object.values(ShutdownSignal).filter((s) => s !== ShutdownSignal.SIGHUP));
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
