import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigModule, loadConfig } from '#otter/config';
import { BLOB_STORE, type BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';
import { StorageModule } from './storage.module.js';
import { startTestS3Server } from './testing.js';

async function boot(env: Record<string, string>) {
  const moduleRef = await Test.createTestingModule({
    imports: [ConfigModule.forRoot(loadConfig({ OTTER_LOG_LEVEL: 'silent', ...env })), StorageModule],
  }).compile();
  await moduleRef.init();
  return { store: moduleRef.get<BlobStore>(BLOB_STORE), close: () => moduleRef.close() };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('StorageModule', () => {
  it('provides the filesystem store under the data dir by default', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'otter-data-'));
    const { store, close } = await boot({ OTTER_DATA_DIR: dataDir });
    try {
      expect(store).toBeInstanceOf(FsBlobStore);
      await store.put('k', Readable.from([Buffer.from('fs')]));
      expect(await store.stat('k')).toEqual({ length: 2 });
    } finally {
      await close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('provides the S3 store with OTTER_BLOB_STORE=s3 and creates the missing bucket at boot', async () => {
    const s3 = await startTestS3Server('otter-boot-test');
    const env = {
      OTTER_BLOB_STORE: 's3',
      OTTER_S3_ENDPOINT: s3.config.endpoint ?? '',
      OTTER_S3_BUCKET: s3.config.bucket,
      OTTER_S3_ACCESS_KEY_ID: 'S3RVER',
      OTTER_S3_SECRET_ACCESS_KEY: 'S3RVER',
    };
    try {
      const first = await boot(env);
      expect(first.store).toBeInstanceOf(S3BlobStore);
      await first.store.put('k', Readable.from([Buffer.from('s3')]));
      expect(await first.store.stat('k')).toEqual({ length: 2 });
      await first.close();
      expect(s3.requests.slice(0, 2)).toEqual(['HEAD /otter-boot-test/', 'PUT /otter-boot-test/']); // CreateBucket

      // A second boot finds the bucket and its object.
      const second = await boot(env);
      expect(await second.store.stat('k')).toEqual({ length: 2 });
      await second.close();
    } finally {
      await s3.close();
    }
  });

  it('fails to boot with a clear error when S3 is unreachable', async () => {
    const env = {
      OTTER_BLOB_STORE: 's3',
      OTTER_S3_ENDPOINT: `http://127.0.0.1:${await closedPort()}`,
      OTTER_S3_BUCKET: 'otter-test',
      OTTER_S3_ACCESS_KEY_ID: 'x',
      OTTER_S3_SECRET_ACCESS_KEY: 'y',
    };
    await expect(boot(env)).rejects.toThrow(
      /blob store: S3 bucket "otter-test" at http:\/\/127\.0\.0\.1:\d+ is not usable/,
    );
  });

  it('rejects a put to an unreachable S3 instead of hanging, and releases the source', async () => {
    const s3 = await startTestS3Server();
    const store = new S3BlobStore(s3.config);
    await store.ensureBucket();
    await s3.close();
    let destroyed = false;
    const endless = new Readable({
      read() {
        this.push(randomBytes(64 * 1024));
      },
      destroy(error, callback) {
        destroyed = true;
        callback(error);
      },
    });
    try {
      const error = await store.put('k', endless).then(
        () => undefined,
        (e: unknown) => e,
      );
      // The S3 client's own error (connection refused), not the AbortError of the abandoned read.
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).name).not.toBe('AbortError');
      expect(destroyed).toBe(true);
    } finally {
      store.close();
    }
  });
});
