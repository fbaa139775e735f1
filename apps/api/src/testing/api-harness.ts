import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfig, type OtterConfig } from '#otter/config';
import { DB, type Db } from '#otter/db';
import { DirectorRepository } from '#otter/director';
import { BLOB_STORE, type BlobStore } from '#otter/storage';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';
import { createApi } from '../create-api.js';
import { TimestampCache } from '../tuf/timestamp-cache.js';
import { checkResponses, type ResponseConformance } from './response-conformance.js';

export interface ApiHarness {
  app: NestFastifyApplication;
  url: string;
  config: OtterConfig;
  db: Db;
  blobs: BlobStore;
  repository: TufRepository;
  /** Stores bytes and publishes them as a target, the way the release service does. */
  publish(path: string, bytes: Buffer, custom?: Record<string, unknown>): Promise<{ sha256: string }>;
  /** Drops in-process caches so the next request sees tampered state at once. */
  invalidateCaches(): void;
  /** Every answer checked against the OpenAPI document; close() fails when one did not match. */
  conformance: ResponseConformance;
  /** A JSON call with the bootstrap admin token; anything but 2xx throws with the status and the body. */
  admin<T>(method: string, path: string, body?: unknown): Promise<T>;
  close(): Promise<void>;
}

/** A real api on 127.0.0.1 with a fresh data dir; env overrides on top of the embedded defaults. */
export async function startApi(env: Record<string, string> = {}): Promise<ApiHarness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-api-'));
  const config = loadConfig({
    OTTER_DATA_DIR: dataDir,
    OTTER_LOG_LEVEL: 'silent',
    OTTER_PORT: '0',
    OTTER_ENV: 'test',
    // The test Redis, under a prefix of its own: parallel test files never see each other's jobs or keys.
    ...(process.env.OTTER_TEST_REDIS_URL ? { REDIS_URL: process.env.OTTER_TEST_REDIS_URL } : {}),
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    ...env,
  });
  const app = await createApi(config);
  const conformance = checkResponses(app);
  // Port 0 (any free port) unless a test restarts an api where its clients expect it.
  await app.listen({ port: Number(env.OTTER_TEST_PORT ?? 0), host: '127.0.0.1' });
  const address = app.getHttpServer().address();
  if (!address || typeof address === 'string') throw new Error('no listening address');
  const blobs = app.get<BlobStore>(BLOB_STORE);
  const repository = app.get<TufRepository>(IMAGE_REPOSITORY);
  const url = `${config.tls ? 'https' : 'http'}://127.0.0.1:${address.port}`;
  return {
    app,
    url,
    config,
    db: app.get<Db>(DB),
    blobs,
    repository,
    async publish(path, bytes, custom = {}) {
      const blobKey = `test/${path}`;
      const stored = await blobs.put(blobKey, Readable.from([bytes]));
      await repository.addTargets([{ path, length: stored.length, sha256: stored.sha256, custom, blobKey }]);
      return { sha256: stored.sha256 };
    },
    invalidateCaches: () => {
      app.get(TimestampCache).invalidate();
      app.get(DirectorRepository).forgetAllHeld();
    },
    async admin<T>(method: string, path: string, body?: unknown): Promise<T> {
      const token = readFileSync(join(config.dataDir, 'admin-token'), 'utf8').trim();
      const res = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return JSON.parse(text) as T;
    },
    conformance,
    async close() {
      await app.close();
      if (conformance.violations.length > 0) {
        throw new Error(
          `answers that do not match GET /api/openapi.json:\n${[...new Set(conformance.violations)].join('\n')}`,
        );
      }
    },
  };
}
