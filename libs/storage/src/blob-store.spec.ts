import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OtterError, type ErrorCode } from '#otter/errors';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';
import { startTestS3Server } from './testing.js';

const MIB = 1024 * 1024;
// The S3 store runs with S3's minimum part size, so every multi-MiB body below is a real multipart upload.
const PART_SIZE = 5 * MIB;

interface Harness {
  store: BlobStore;
  /** Everything the backend holds: for fs every file under the parent of the root (temp files included). */
  snapshot(): Promise<string[]>;
  teardown(): Promise<void>;
}

const backends: Array<{ name: string; setup: () => Promise<Harness> }> = [
  {
    name: 'fs',
    setup: async () => {
      // The root sits inside a parent directory that must stay otherwise empty: nothing may land outside it.
      const parent = await mkdtemp(join(tmpdir(), 'otter-blobs-'));
      const store = new FsBlobStore(join(parent, 'root'));
      return {
        store,
        snapshot: async () =>
          (await readdir(parent, { recursive: true, withFileTypes: true }))
            .filter((entry) => !entry.isDirectory())
            .map((entry) => join(entry.parentPath, entry.name).slice(parent.length))
            .sort(),
        teardown: () => rm(parent, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 's3',
    setup: async () => {
      const server = await startTestS3Server();
      const store = new S3BlobStore(server.config, { partSize: PART_SIZE });
      await store.ensureBucket();
      const lister = new S3Client({
        endpoint: server.config.endpoint,
        region: server.config.region,
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      return {
        store,
        snapshot: async () => {
          const listed = await lister.send(new ListObjectsV2Command({ Bucket: server.config.bucket }));
          return (listed.Contents ?? []).map((object) => object.Key ?? '').sort();
        },
        teardown: async () => {
          store.close();
          lister.destroy();
          await server.close();
        },
      };
    },
  },
];

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Streams data in 64 KiB chunks, as a network upload would arrive. */
function streamOf(
  data: Buffer,
  options: { failAfter?: number; error?: Error; pauseAt?: Promise<void>[] } = {},
) {
  const chunk = 64 * 1024;
  return Readable.from(
    (async function* () {
      for (let offset = 0; offset < data.length; offset += chunk) {
        if (options.failAfter !== undefined && offset >= options.failAfter) throw options.error;
        yield data.subarray(offset, offset + chunk);
      }
    })(),
    { objectMode: false },
  );
}

/** A body that sends `first`, then waits for `release` before sending `rest`. */
function pausedStream(first: Buffer, rest: Buffer, release: Promise<void>) {
  let sentFirst!: () => void;
  const firstSent = new Promise<void>((resolve) => (sentFirst = resolve));
  const body = Readable.from(
    (async function* () {
      yield first;
      sentFirst();
      await release;
      yield rest;
    })(),
    { objectMode: false },
  );
  return { body, firstSent };
}

async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function expectOtterError(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected OtterError ${code}`).toBeInstanceOf(OtterError);
  expect((error as OtterError).code).toBe(code);
}

describe.each(backends)('$name blob store', ({ name, setup }) => {
  let h: Harness;
  let store: BlobStore;
  let n = 0;
  const freshKey = () => `t/${name}-${++n}/blob.img`;

  beforeAll(async () => {
    h = await setup();
    store = h.store;
  });
  afterAll(async () => {
    await h?.teardown();
  });

  it('reports its kind', () => {
    expect(store.kind).toBe(name);
  });

  it('round-trips a multi-MiB streamed body with its length and sha256', async () => {
    const data = randomBytes(12 * MIB + 123);
    const key = freshKey();
    const stored = await store.put(key, streamOf(data), { expectedSha256: sha256(data).toUpperCase() });
    expect(stored).toEqual({ length: data.length, sha256: sha256(data) });
    expect(await store.stat(key)).toEqual({ length: data.length });
    const back = await read(await store.get(key));
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
  });

  it('stores an empty body', async () => {
    const key = freshKey();
    expect(await store.put(key, streamOf(Buffer.alloc(0)))).toEqual({
      length: 0,
      sha256: sha256(Buffer.alloc(0)),
    });
    expect(await store.stat(key)).toEqual({ length: 0 });
    expect((await read(await store.get(key))).length).toBe(0);
    await expectOtterError(store.get(key, { start: 0, end: 0 }), 'RANGE_NOT_SATISFIABLE');
  });

  it('serves inclusive ranges: start, middle, last byte, whole', async () => {
    const data = randomBytes(3 * MIB + 7);
    const key = freshKey();
    await store.put(key, streamOf(data));
    const last = data.length - 1;
    // `bytes=0-0` is in the fs-specific tests: s3rver answers it with the whole object.
    for (const [start, end] of [
      [0, 99],
      [1, 1],
      [1_234_567, 2_345_678],
      [last, last],
      [0, last],
    ] as const) {
      const part = await read(await store.get(key, { start, end }));
      expect(part.length, `range ${start}-${end}`).toBe(end - start + 1);
      expect(part.equals(data.subarray(start, end + 1)), `range ${start}-${end}`).toBe(true);
    }
  });

  it('refuses ranges that do not fit the blob exactly', async () => {
    const key = freshKey();
    await store.put(key, streamOf(Buffer.from('0123456789')));
    for (const range of [
      { start: 0, end: 10 }, // one past the end: S3 would silently shorten it
      { start: 10, end: 10 },
      { start: 5, end: 4 },
      { start: -1, end: 3 },
      { start: 0.5, end: 3 },
      { start: 0, end: Number.POSITIVE_INFINITY },
    ]) {
      await expectOtterError(store.get(key, range), 'RANGE_NOT_SATISFIABLE');
    }
  });

  it('answers BLOB_NOT_FOUND and a null stat for a missing key, with or without a range', async () => {
    await expectOtterError(store.get('t/missing.img'), 'BLOB_NOT_FOUND');
    await expectOtterError(store.get('t/missing.img', { start: 0, end: 3 }), 'BLOB_NOT_FOUND');
    expect(await store.stat('t/missing.img')).toBeNull();
  });

  it('stores a body of exactly maxBytes', async () => {
    const data = randomBytes(MIB);
    const key = freshKey();
    expect((await store.put(key, streamOf(data), { maxBytes: MIB })).length).toBe(MIB);
  });

  it('refuses an over-limit body and stores nothing, after parts were already sent', async () => {
    const before = await h.snapshot();
    const key = freshKey();
    // 7 MiB limit, 12 MiB body: the first 5 MiB part is uploaded before the limit trips.
    await expectOtterError(
      store.put(key, streamOf(randomBytes(12 * MIB)), { maxBytes: 7 * MIB }),
      'PAYLOAD_TOO_LARGE',
    );
    expect(await store.stat(key)).toBeNull();
    expect(await h.snapshot()).toEqual(before);
  });

  it('stops reading an endless source at the limit and destroys it', async () => {
    let produced = 0;
    let destroyed = false;
    const endless = new Readable({
      read() {
        produced += 64 * 1024;
        this.push(randomBytes(64 * 1024));
      },
      destroy(error, callback) {
        destroyed = true;
        callback(error);
      },
    });
    const key = freshKey();
    await expectOtterError(store.put(key, endless, { maxBytes: 6 * MIB }), 'PAYLOAD_TOO_LARGE');
    expect(destroyed).toBe(true);
    expect(produced).toBeLessThan(8 * MIB); // the limit plus stream buffers, not the endless rest
    expect(await store.stat(key)).toBeNull();
  });

  it('keeps the existing object when an over-limit put targets its key', async () => {
    const key = freshKey();
    const original = randomBytes(1000);
    await store.put(key, streamOf(original));
    const before = await h.snapshot();
    await expectOtterError(
      store.put(key, streamOf(randomBytes(2 * MIB)), { maxBytes: MIB }),
      'PAYLOAD_TOO_LARGE',
    );
    expect((await read(await store.get(key))).equals(original)).toBe(true);
    expect(await h.snapshot()).toEqual(before);
  });

  it('rethrows a source stream error mid-way and stores nothing, keeping the existing object', async () => {
    const key = freshKey();
    const original = randomBytes(1000);
    await store.put(key, streamOf(original));
    const before = await h.snapshot();
    const broken = new Error('client went away');
    const attempt = store.put(key, streamOf(randomBytes(12 * MIB), { failAfter: 6 * MIB, error: broken }));
    await expect(attempt).rejects.toBe(broken);
    expect((await read(await store.get(key))).equals(original)).toBe(true);
    expect(await h.snapshot()).toEqual(before);

    const fresh = freshKey();
    await expect(
      store.put(fresh, streamOf(randomBytes(MIB), { failAfter: MIB / 2, error: broken })),
    ).rejects.toBe(broken);
    expect(await store.stat(fresh)).toBeNull();
  });

  it('refuses a body whose sha256 differs from expectedSha256 and stores nothing', async () => {
    const key = freshKey();
    const original = randomBytes(1000);
    await store.put(key, streamOf(original));
    const before = await h.snapshot();
    // Exactly two parts: every part is sent before the source ends, so only completion is left to stop.
    const data = randomBytes(2 * PART_SIZE);
    const wrong = sha256(Buffer.concat([data, Buffer.from('x')]));
    await expectOtterError(store.put(key, streamOf(data), { expectedSha256: wrong }), 'BLOB_HASH_MISMATCH');
    const fresh = freshKey();
    await expectOtterError(
      store.put(fresh, streamOf(randomBytes(10)), { expectedSha256: wrong }),
      'BLOB_HASH_MISMATCH',
    );
    expect((await read(await store.get(key))).equals(original)).toBe(true);
    expect(await store.stat(fresh)).toBeNull();
    expect(await h.snapshot()).toEqual(before);
  });

  it('refuses a malformed expectedSha256 before storing anything', async () => {
    const key = freshKey();
    await expectOtterError(
      store.put(key, streamOf(Buffer.from('x')), { expectedSha256: 'abc' }),
      'VALIDATION_FAILED',
    );
    expect(await store.stat(key)).toBeNull();
  });

  it('refuses path traversal and malformed keys on every operation, writing nothing anywhere', async () => {
    const before = await h.snapshot();
    const badKeys = [
      '../x',
      'a/../../b',
      '..',
      '.',
      'a/./b',
      '/etc/passwd',
      '/tmp/x',
      'a//b',
      'a/',
      '',
      'a\0b',
      '..\\..\\x',
      'a/%2e%2e/b',
      'a b',
      'é',
      `${'a/'.repeat(256)}a`, // 513 characters
      'x'.repeat(256), // one segment longer than a file name may be
    ];
    for (const key of badKeys) {
      await expectOtterError(store.put(key, streamOf(Buffer.from('payload'))), 'VALIDATION_FAILED');
      await expectOtterError(store.get(key), 'VALIDATION_FAILED');
      await expectOtterError(store.stat(key), 'VALIDATION_FAILED');
      await expectOtterError(store.delete(key), 'VALIDATION_FAILED');
      await expectOtterError(store.presignGet(key, 60), 'VALIDATION_FAILED');
    }
    expect(await h.snapshot()).toEqual(before);
  });

  it('accepts the longest and the oddest valid keys', async () => {
    // Segments stay under 200 characters: s3rver stores `<segment>._S3rver_object` files.
    const longest = `${'a'.repeat(199)}/${'b'.repeat(199)}/${'c'.repeat(112)}`;
    expect(longest.length).toBe(512);
    for (const key of [longest, '.hidden', 'a/..b/c..', '-_.x', 'A-Z_0-9.img']) {
      await store.put(key, streamOf(Buffer.from(key)));
      expect((await read(await store.get(key))).toString()).toBe(key);
      await store.delete(key);
    }
  });

  it('deletes idempotently', async () => {
    const key = freshKey();
    await store.delete(key);
    await store.put(key, streamOf(Buffer.from('bye')));
    await store.delete(key);
    await store.delete(key);
    expect(await store.stat(key)).toBeNull();
    await expectOtterError(store.get(key), 'BLOB_NOT_FOUND');
  });

  it('replaces an object atomically: readers see the old object until the new one is complete', async () => {
    const key = freshKey();
    const v1 = randomBytes(MIB);
    await store.put(key, streamOf(v1));
    const v2 = randomBytes(8 * MIB);
    let release!: () => void;
    const { body, firstSent } = pausedStream(
      v2.subarray(0, 6 * MIB),
      v2.subarray(6 * MIB),
      new Promise<void>((resolve) => (release = resolve)),
    );
    const putting = store.put(key, body);
    await firstSent;
    await new Promise((resolve) => setTimeout(resolve, 100)); // let the first part reach the backend
    expect(await store.stat(key)).toEqual({ length: v1.length });
    const reader = await store.get(key); // opened before the replacement completes
    expect((await read(await store.get(key))).equals(v1)).toBe(true);
    release();
    expect(await putting).toEqual({ length: v2.length, sha256: sha256(v2) });
    expect((await read(await store.get(key))).equals(v2)).toBe(true);
    expect(await store.stat(key)).toEqual({ length: v2.length });
    // A reader opened on the old object still gets the whole old object, never a mix.
    const old = await read(reader);
    expect(old.equals(v1) || old.equals(v2)).toBe(true);
  });

  it('returns no presigned URL (fs has none; S3 waits for @aws-sdk/s3-request-presigner)', async () => {
    const key = freshKey();
    await store.put(key, streamOf(Buffer.from('x')));
    expect(await store.presignGet(key, 60)).toBeNull();
  });
});

describe('fs blob store specifics', () => {
  it('serves the first byte alone and accepts a segment of the maximum length', async () => {
    const root = await mkdtemp(join(tmpdir(), 'otter-blobs-'));
    const store = new FsBlobStore(root);
    await store.put('first', streamOf(Buffer.from('xyz')));
    expect((await read(await store.get('first', { start: 0, end: 0 }))).toString()).toBe('x');
    const longest = `${'a'.repeat(255)}/${'b'.repeat(255)}`;
    await store.put(longest, streamOf(Buffer.from('long')));
    expect((await read(await store.get(longest))).toString()).toBe('long');
    await rm(root, { recursive: true, force: true });
  });

  it('refuses a key whose path collides with another key, keeping both intact', async () => {
    const root = await mkdtemp(join(tmpdir(), 'otter-blobs-'));
    const store = new FsBlobStore(root);
    await store.put('a/b', streamOf(Buffer.from('nested')));
    await expectOtterError(store.put('a', streamOf(Buffer.from('flat'))), 'VALIDATION_FAILED');
    await store.put('c', streamOf(Buffer.from('flat')));
    await expectOtterError(store.put('c/d', streamOf(Buffer.from('nested'))), 'VALIDATION_FAILED');
    // A key that is only a directory holds no blob.
    expect(await store.stat('a')).toBeNull();
    await expectOtterError(store.get('a'), 'BLOB_NOT_FOUND');
    await store.delete('a');
    expect((await read(await store.get('a/b'))).toString()).toBe('nested');
    expect((await read(await store.get('c'))).toString()).toBe('flat');
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
    await rm(root, { recursive: true, force: true });
  });
});

describe('s3 blob store specifics', () => {
  it('refuses a ranged answer that is not exactly the requested range', async () => {
    const server = await startTestS3Server();
    const store = new S3BlobStore(server.config);
    try {
      await store.ensureBucket();
      await store.put('first', streamOf(Buffer.from('xyz')));
      // s3rver answers `bytes=0-0` with the whole object (S3 and MinIO do not): never pass that on as a range.
      await expectOtterError(store.get('first', { start: 0, end: 0 }), 'RANGE_NOT_SATISFIABLE');
    } finally {
      store.close();
      await server.close();
    }
  });

  it('aborts a failed multipart upload and never completes it', async () => {
    const server = await startTestS3Server();
    const store = new S3BlobStore(server.config, { partSize: PART_SIZE });
    try {
      await store.ensureBucket();
      await store.ensureBucket(); // idempotent
      server.requests.length = 0;
      await expectOtterError(
        store.put('big.img', streamOf(randomBytes(12 * MIB)), { maxBytes: 11 * MIB }),
        'PAYLOAD_TOO_LARGE',
      );
      const multipart = server.requests.filter((r) => r.includes('uploadId='));
      expect(multipart.some((r) => r.startsWith('PUT '))).toBe(true); // parts were sent
      expect(multipart.some((r) => r.startsWith('DELETE '))).toBe(true); // then the upload was aborted
      expect(multipart.some((r) => r.startsWith('POST '))).toBe(false); // and never completed
      expect(await store.stat('big.img')).toBeNull();
    } finally {
      store.close();
      await server.close();
    }
  });
});
