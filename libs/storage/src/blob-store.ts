import type { Readable } from 'node:stream';

/** Inclusive byte offsets, like an HTTP `Range: bytes=start-end`; `end` must be below the blob's length. */
export interface BlobRange {
  start: number;
  end: number;
}

/** What a completed put stored: the byte count and the lowercase hex sha256 of exactly those bytes. */
export interface StoredBlob {
  length: number;
  sha256: string;
}

export interface PutOptions {
  maxBytes?: number;
  expectedSha256?: string;
  contentType?: string;
}

/**
 * Otter's blob store. Blobs are system images of any size, so bodies stream in and out and memory stays
 * flat. Keys are relative paths of `[A-Za-z0-9._-]` segments (see `assertBlobKey`).
 */
export interface BlobStore {
  readonly kind: 'fs' | 's3';
  /**
   * Streams body in, hashing as it goes. Atomic: the key shows the new object only once it is complete and
   * (if expectedSha256 given) verified. Over maxBytes -> OtterError('PAYLOAD_TOO_LARGE'), nothing stored.
   * Source stream error -> rethrown, nothing stored. Hash mismatch -> OtterError('BLOB_HASH_MISMATCH').
   * A failed put has destroyed body (stream pipeline semantics): wrap a socket-backed stream (`request.raw`)
   * in a PassThrough if the connection must survive to carry the error response.
   */
  put(key: string, body: Readable, options?: PutOptions): Promise<StoredBlob>;
  /** Whole object or an inclusive range. Missing -> OtterError('BLOB_NOT_FOUND'); bad range -> 'RANGE_NOT_SATISFIABLE'. */
  get(key: string, range?: BlobRange): Promise<Readable>;
  stat(key: string): Promise<{ length: number } | null>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /** Presigned GET URL valid for ttlSeconds (S3 only; fs returns null). */
  presignGet(key: string, ttlSeconds: number): Promise<string | null>;
}

export const BLOB_STORE = Symbol('BLOB_STORE');
