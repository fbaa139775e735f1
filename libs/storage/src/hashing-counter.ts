import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { OtterError, ValidationError } from '#otter/errors';
import type { StoredBlob } from './blob-store.js';

export interface HashingCounterOptions {
  /** The stream fails with PAYLOAD_TOO_LARGE as soon as more than this many bytes pass. */
  maxBytes?: number;
  /** Lowercase or uppercase hex; the stream fails with BLOB_HASH_MISMATCH at its end if the bytes differ. */
  expectedSha256?: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Passes bytes through unchanged while counting them and computing their sha256.
 *
 * Both checks fail the stream *before* it ends: the size check on the first byte too many, the hash check
 * in flush, which runs before the readable side emits 'end'. A consumer that only commits on a clean end
 * (a rename after the pipeline, an S3 multipart upload that completes after the last part) therefore never
 * commits bytes that failed a check.
 */
export class HashingCounter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private readonly maxBytes: number | undefined;
  private readonly expectedSha256: string | undefined;
  private count = 0;
  private digest: string | undefined;

  constructor(options: HashingCounterOptions = {}) {
    super();
    const { maxBytes, expectedSha256 } = options;
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 0)) {
      throw new ValidationError('maxBytes must be a non-negative integer');
    }
    const expected = expectedSha256?.toLowerCase();
    if (expected !== undefined && !SHA256_HEX.test(expected)) {
      throw new ValidationError('expectedSha256 must be 64 hex characters');
    }
    this.maxBytes = maxBytes;
    this.expectedSha256 = expected;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.count;
  }

  /** Length and sha256 of everything that passed; only once the stream has ended cleanly. */
  result(): StoredBlob {
    if (this.digest === undefined) throw new Error('HashingCounter.result() called before the stream ended');
    return { length: this.count, sha256: this.digest };
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    if (this.maxBytes !== undefined && this.count > this.maxBytes) {
      callback(
        new OtterError('PAYLOAD_TOO_LARGE', `body exceeds ${this.maxBytes} bytes`, {
          maxBytes: this.maxBytes,
        }),
      );
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hash.digest('hex');
    if (this.expectedSha256 !== undefined && actual !== this.expectedSha256) {
      callback(
        new OtterError('BLOB_HASH_MISMATCH', 'body does not match the expected sha256', {
          expected: this.expectedSha256,
          actual,
        }),
      );
      return;
    }
    this.digest = actual;
    callback();
  }
}
