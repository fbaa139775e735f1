import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  S3Client,
  S3ServiceException,
  type BucketLocationConstraint,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable, pipeline } from 'node:stream';
import type { S3Config } from '#otter/config';
import { ValidationError } from '#otter/errors';
import { assertBlobKey, assertRangeShape, blobNotFound, rangeNotSatisfiable } from './blob-key.js';
import type { BlobRange, BlobStore, PutOptions, StoredBlob } from './blob-store.js';
import { HashingCounter } from './hashing-counter.js';

const MIB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MIB; // S3's minimum for every part but the last
const MAX_PARTS = 10_000; // S3's maximum parts per multipart upload
const DEFAULT_PART_SIZE = 8 * MIB;
const MAX_PRESIGN_TTL_SECONDS = 7 * 24 * 3600; // SigV4 limit

export interface S3BlobStoreOptions {
  /**
   * Multipart part size in bytes (at least 5 MiB). Memory per put is about (queueSize + 1) × partSize.
   * Default 8 MiB; raised per put when PutOptions.maxBytes needs bigger parts to fit S3's 10,000-part limit
   * (without maxBytes, a put holds at most 10,000 parts: 78 GiB at 8 MiB).
   */
  partSize?: number;
  /** Parts uploaded in parallel per put. Default 4. */
  queueSize?: number;
}

/**
 * Blobs as objects in one S3 (or MinIO) bucket, under their key as is.
 *
 * Atomic put without a temporary key: the body streams through a HashingCounter into a multipart upload
 * (`Upload` from lib-storage), and lib-storage sends the last part (or, for a body under one part, the
 * single PutObject) only after the source has ended cleanly, and CompleteMultipartUpload only after that.
 * The counter fails the stream before its end when the body is over maxBytes or its sha256 differs, so a
 * bad or broken body aborts the multipart upload and the key keeps showing its previous object, if any.
 * S3 makes a completed upload visible at once and whole. Compared with upload-to-`tmp/<uuid>`-then-copy,
 * this moves each byte once, has no 5 GB CopyObject limit (UploadPartCopy is not needed), and reserves no
 * key prefix. The SDK adds a CRC32 checksum to every part, so S3 stores the bytes that were hashed.
 *
 * Operations: a process that dies mid-put leaves an incomplete multipart upload (invisible, but billed);
 * give the bucket an AbortIncompleteMultipartUpload lifecycle rule (e.g. 1 day).
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly region: string;
  private readonly partSize: number | undefined;
  private readonly queueSize: number;

  constructor(config: S3Config, options: S3BlobStoreOptions = {}) {
    if (
      options.partSize !== undefined &&
      (!Number.isSafeInteger(options.partSize) || options.partSize < MIN_PART_SIZE)
    ) {
      throw new RangeError(`partSize must be an integer of at least ${MIN_PART_SIZE} bytes`);
    }
    this.bucket = config.bucket;
    this.region = config.region;
    this.partSize = options.partSize;
    this.queueSize = options.queueSize ?? 4;
    this.client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    });
  }

  /** Creates the bucket unless it exists; safe when several replicas boot at once. */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (error) {
      if (httpStatus(error) !== 404) throw error;
    }
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          // us-east-1 is S3's default location and refuses being named explicitly.
          ...(this.region === 'us-east-1'
            ? {}
            : { CreateBucketConfiguration: { LocationConstraint: this.region as BucketLocationConstraint } }),
        }),
      );
    } catch (error) {
      if (error instanceof S3ServiceException && error.name === 'BucketAlreadyOwnedByYou') return;
      throw error;
    }
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<StoredBlob> {
    assertBlobKey(key);
    const counter = new HashingCounter({
      maxBytes: options.maxBytes,
      expectedSha256: options.expectedSha256,
    });
    // pipeline forwards a source error into the counter, which fails lib-storage's read of it.
    pipeline(body, counter, () => {});
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: counter,
        ContentType: options.contentType ?? 'application/octet-stream',
      },
      partSize: this.partSizeFor(options.maxBytes),
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      const bodyFailure = counter.errored;
      // The upload may have given up first (S3 unreachable): stop reading the source.
      counter.destroy();
      body.destroy();
      // A source that broke or a failed check explains the failure better than the multipart abort that
      // followed it. When lib-storage gives up first, it abandons its read of the counter, which destroys
      // the counter with an AbortError: then the upload's own error is the cause.
      throw bodyFailure && !(bodyFailure instanceof Error && bodyFailure.name === 'AbortError')
        ? bodyFailure
        : error;
    }
    return counter.result();
  }

  async get(key: string, range?: BlobRange): Promise<Readable> {
    assertBlobKey(key);
    if (range) assertRangeShape(range);
    let response;
    try {
      response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
    } catch (error) {
      if (httpStatus(error) === 404) throw blobNotFound(key);
      if (httpStatus(error) === 416 && range) throw rangeNotSatisfiable(range);
      throw error;
    }
    const body = response.Body;
    if (!(body instanceof Readable)) throw new Error('S3 GetObject returned no readable body');
    if (range) {
      // S3 shortens a range that runs past the end, and test servers have been seen to answer `bytes=0-0`
      // with the whole object or an empty one with `0-0/0`: the contract is exactly [start, end] or an error.
      const served = parseContentRange(response.ContentRange);
      if (
        !served ||
        served.start !== range.start ||
        served.end !== range.end ||
        served.end >= served.length
      ) {
        body.destroy();
        throw rangeNotSatisfiable(range, served?.length);
      }
    }
    return body;
  }

  async stat(key: string): Promise<{ length: number } | null> {
    assertBlobKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { length: head.ContentLength ?? 0 };
    } catch (error) {
      if (httpStatus(error) === 404) return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /**
   * Would sign a GET URL with `@aws-sdk/s3-request-presigner`, which is not installed yet; until it is,
   * callers stream through `get` instead.
   */
  async presignGet(key: string, ttlSeconds: number): Promise<string | null> {
    assertBlobKey(key);
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_PRESIGN_TTL_SECONDS) {
      throw new ValidationError(`ttlSeconds must be an integer from 1 to ${MAX_PRESIGN_TTL_SECONDS}`);
    }
    return null;
  }

  /** Closes the client's sockets. */
  close(): void {
    this.client.destroy();
  }

  private partSizeFor(maxBytes: number | undefined): number {
    return Math.max(this.partSize ?? DEFAULT_PART_SIZE, Math.ceil((maxBytes ?? 0) / MAX_PARTS));
  }
}

function httpStatus(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

function parseContentRange(
  header: string | undefined,
): { start: number; end: number; length: number } | null {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header ?? '');
  return match ? { start: Number(match[1]), end: Number(match[2]), length: Number(match[3]) } : null;
}
