import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ValidationError } from '#otter/errors';
import { assertBlobKey, assertRangeShape, blobNotFound, rangeNotSatisfiable } from './blob-key.js';
import type { BlobRange, BlobStore, PutOptions, StoredBlob } from './blob-store.js';
import { HashingCounter } from './hashing-counter.js';

/**
 * Blobs as files under `<root>/objects/<key>`. A put streams into `<root>/.tmp/<uuid>`, fsyncs it and renames
 * it into place, so readers see either the old file or the complete new one, never a partial write. Temp
 * files live outside `objects/`, so no key can name or read them.
 *
 * Unlike S3, a filesystem cannot hold both `a` and `a/b`: putting one while the other exists fails with
 * VALIDATION_FAILED and stores nothing; a key that is only a directory reads as missing.
 */
export class FsBlobStore implements BlobStore {
  readonly kind = 'fs' as const;
  private readonly objectsDir: string;
  private readonly tmpDir: string;

  constructor(rootDir: string) {
    const root = resolve(rootDir);
    this.objectsDir = join(root, 'objects');
    this.tmpDir = join(root, '.tmp');
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<StoredBlob> {
    const target = this.pathOf(key);
    const counter = new HashingCounter({
      maxBytes: options.maxBytes,
      expectedSha256: options.expectedSha256,
    });
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = join(this.tmpDir, randomUUID());
    let renamed = false;
    try {
      // 'wx': a fresh file, never an existing path (or a link planted at it); flush: fsync before close,
      // which the pipeline waits for, so the data is on disk before the rename publishes it.
      await pipeline(body, counter, createWriteStream(tmp, { flags: 'wx', mode: 0o640, flush: true }));
      try {
        await mkdir(dirname(target), { recursive: true });
        await rename(tmp, target);
      } catch (error) {
        if (isFsError(error, 'ENOTDIR', 'EEXIST', 'EISDIR', 'ENOTEMPTY')) {
          throw new ValidationError('blob key collides with the path of another key', { key });
        }
        throw error;
      }
      renamed = true;
      await syncDirectory(dirname(target));
      return counter.result();
    } finally {
      if (!renamed) await rm(tmp, { force: true });
    }
  }

  async get(key: string, range?: BlobRange): Promise<Readable> {
    const path = this.pathOf(key);
    if (range) assertRangeShape(range);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (isFsError(error, 'ENOENT', 'ENOTDIR')) throw blobNotFound(key);
      throw error;
    }
    // Checks and reads go through one open handle: a concurrent put renames a new inode into place, and this
    // reader keeps the complete old one.
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw blobNotFound(key);
      if (range && range.end >= info.size) throw rangeNotSatisfiable(range, info.size);
      return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async stat(key: string): Promise<{ length: number } | null> {
    const path = this.pathOf(key);
    try {
      const info = await stat(path);
      return info.isFile() ? { length: info.size } : null;
    } catch (error) {
      if (isFsError(error, 'ENOENT', 'ENOTDIR')) return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (error) {
      // Missing, or only a directory that other keys live under: either way no blob is stored at this key.
      if (isFsError(error, 'ENOENT', 'ENOTDIR')) return;
      if (isFsError(error, 'EISDIR', 'EPERM') && (await stat(path).catch(() => null))?.isDirectory()) return;
      throw error;
    }
  }

  async presignGet(key: string, _ttlSeconds: number): Promise<string | null> {
    assertBlobKey(key);
    return null;
  }

  private pathOf(key: string): string {
    assertBlobKey(key);
    const path = resolve(this.objectsDir, key);
    // Defence in depth: assertBlobKey already makes this impossible.
    if (!path.startsWith(this.objectsDir + sep)) throw new ValidationError('blob key escapes the store root');
    return path;
  }
}

// Makes the rename itself durable. Best effort: some filesystems refuse fsync on directories.
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => {});
  await handle.close();
}

function isFsError(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}
