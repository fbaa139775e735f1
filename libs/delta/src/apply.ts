import { createHash, randomBytes, type Hash } from 'node:crypto';
import { mkdtemp, open, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createZstdDecompress } from 'node:zlib';
import { applySegments, checkHeaderV2 } from './apply-v2.js';
import { BspatchSandbox } from './bspatch-sandbox.js';
import {
  BSDIFF_HEADER_BYTES,
  DELTA_HEADER_BYTES,
  DeltaError,
  OP_BSDIFF,
  OP_COPY,
  OP_HEADER_BYTES,
  OP_RAW,
  OP_ZERO,
  assertSha256Hex,
  checkBsdiffPayloadHeader,
  decodeHeader,
  decodeOperation,
  operationType,
  type DeltaHeader,
  type DeltaOperation,
  type ImageIdentity,
} from './format.js';
import { DELTA_FORMAT_VERSION_2, decodeHeaderV2, headerVersion, type DeltaHeaderV2 } from './format-v2.js';
import { IO_CHUNK_BYTES, copyRange, readFully, sha256OfRange, writeFully } from './io.js';
import { StreamReader } from './stream-reader.js';

const MiB = 1024 * 1024;

/** Default bound on what one operation may make the applier buffer (its extent, window or payload). */
export const DEFAULT_MAX_OPERATION_BYTES = 256 * MiB;

export interface ApplyDeltaOptions {
  /** The node's current image: a regular file, or a block device whose first source.length bytes are it. */
  sourceFile: string;
  /** The delta, streamed (e.g. straight from the download); read once, front to back. */
  delta: Readable;
  /**
   * Where the new image goes. A block device (the inactive slot) is opened for writing without truncation
   * and written only inside [0, target.length). Anything else is written to a temporary file next to it,
   * which replaces it only once the result is verified.
   */
  outFile: string;
  /** The signed length and sha256 of the image the delta must produce. */
  expectedTarget: ImageIdentity;
  /** Refuse a delta whose target is longer than this (default: expectedTarget.length). */
  maxOutputBytes?: number;
  /** Refuse any operation that would make the applier buffer more than this (default 256 MiB). */
  maxOperationBytes?: number;
  /** Directory for the bsdiff scratch files (default: next to outFile, or the OS temp dir for a device). */
  workDir?: string;
  /** Time allowed for one bspatch (default: 30 s + 1 s per MiB of its window and extent). */
  bspatchTimeoutMs?: number;
  /** Re-read the written image and hash it again before reporting success (default true). */
  readBack?: boolean;
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

export interface ApplyDeltaResult {
  length: number;
  sha256: string;
}

interface Output {
  fh: FileHandle;
  /** 'device': written in place; 'file': a temporary file renamed over outFile at the end. */
  kind: 'device' | 'file';
  tempPath: string | null;
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

async function openOutput(outFile: string, source: Stats): Promise<Output> {
  const existing = await statOrNull(outFile);
  if (existing && existing.dev === source.dev && existing.ino === source.ino) {
    throw new DeltaError('bad-output', 'the output is the source image itself');
  }
  if (existing?.isBlockDevice()) {
    return { fh: await open(outFile, 'r+'), kind: 'device', tempPath: null };
  }
  if (existing && !existing.isFile()) {
    throw new DeltaError('bad-output', `${outFile} is neither a regular file nor a block device`);
  }
  const tempPath = join(
    dirname(outFile),
    `.${basename(outFile)}.otter-delta-${randomBytes(6).toString('hex')}.tmp`,
  );
  return { fh: await open(tempPath, 'wx+', 0o644), kind: 'file', tempPath };
}

/** Refuses a header (of any version) unless it describes exactly the expected target. */
function checkTarget(target: ImageIdentity, expected: ImageIdentity): void {
  if (target.length !== expected.length || target.sha256 !== expected.sha256) {
    throw new DeltaError('target-mismatch', 'the delta does not produce the expected target', {
      deltaTarget: target,
      expectedTarget: expected,
    });
  }
}

/** Refuses a version-1 header that would exceed the limits or cannot cover the target. */
function checkHeader(header: DeltaHeader, maxOperationBytes: number): void {
  if (header.maxOperationBytes > maxOperationBytes) {
    throw new DeltaError('too-large', `the delta needs ${header.maxOperationBytes} bytes per operation`, {
      maxOperationBytes,
    });
  }
  const minOps = header.target.length > 0 ? 1 : 0;
  if (header.operationCount < minOps || header.operationCount > header.target.length) {
    throw new DeltaError('bad-header', `operation count ${header.operationCount} cannot cover the target`);
  }
}

/**
 * Refuses an operation that does not start exactly where the previous one ended, runs past the target,
 * reads outside the source, or would buffer more than the limits. Runs before any of its bytes are written.
 */
function checkOperation(
  op: DeltaOperation,
  cursor: number,
  previousStart: number,
  header: DeltaHeader,
  maxOperationBytes: number,
): void {
  if (op.length < 1) throw new DeltaError('bad-operation', 'an operation has length 0');
  if (op.targetOffset < cursor) {
    const overlap = op.targetOffset >= previousStart;
    throw new DeltaError(
      overlap ? 'overlap' : 'out-of-order',
      `operation at ${op.targetOffset} ${overlap ? 'overlaps the previous one' : 'comes after a later one'} (expected ${cursor})`,
      { targetOffset: op.targetOffset, expected: cursor },
    );
  }
  if (op.targetOffset > cursor) {
    throw new DeltaError('gap', `operation at ${op.targetOffset} leaves a gap after ${cursor}`, {
      targetOffset: op.targetOffset,
      expected: cursor,
    });
  }
  if (op.targetOffset + op.length > header.target.length) {
    throw new DeltaError('overrun', `operation at ${op.targetOffset} runs past the target's end`);
  }
  const limit = Math.min(maxOperationBytes, header.maxOperationBytes);
  switch (op.type) {
    case OP_COPY:
      if (op.srcOffset + op.length > header.source.length) {
        throw new DeltaError('source-range', `COPY reads past the source's end`);
      }
      break;
    case OP_ZERO:
      break;
    case OP_BSDIFF:
      if (op.srcLength < 1 || op.srcOffset + op.srcLength > header.source.length) {
        throw new DeltaError('source-range', `BSDIFF window lies outside the source`);
      }
      if (op.length > limit || op.srcLength > limit || op.payloadLength > limit) {
        throw new DeltaError('too-large', `BSDIFF operation exceeds ${limit} bytes`);
      }
      if (op.payloadLength < BSDIFF_HEADER_BYTES) {
        throw new DeltaError('bsdiff-invalid', 'BSDIFF payload is shorter than a bsdiff header');
      }
      break;
    case OP_RAW:
      if (op.length > limit || op.payloadLength > limit) {
        throw new DeltaError('too-large', `RAW operation exceeds ${limit} bytes`);
      }
      if (op.payloadLength < 1) throw new DeltaError('zstd-invalid', 'RAW payload is empty');
      break;
  }
}

/**
 * Decompresses a RAW payload into exactly `length` bytes. The zstd window is capped near `length` and the
 * output is counted chunk by chunk, so a payload that expands past its declared length (a "bomb") fails after
 * at most one 64 KiB chunk too many, never after allocating what it would expand to.
 */
async function inflateRaw(reader: StreamReader, payloadLength: number, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  let produced = 0;
  const windowLogMax = Math.min(31, Math.max(10, Math.ceil(Math.log2(length))));
  try {
    await pipeline(
      Readable.from(reader.take(payloadLength, 'a RAW payload'), { objectMode: false }),
      createZstdDecompress({
        chunkSize: 64 * 1024,
        params: { [zlibConstants.ZSTD_d_windowLogMax]: windowLogMax },
      }),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          if (produced + chunk.length > length) {
            throw new DeltaError('zstd-overflow', `RAW payload expands past its declared ${length} bytes`);
          }
          produced += chunk.copy(out, produced);
        }
      },
    );
  } catch (e) {
    if (e instanceof DeltaError) throw e;
    throw new DeltaError('zstd-invalid', `RAW payload is not valid zstd: ${(e as Error).message}`);
  }
  if (produced !== length) {
    throw new DeltaError('zstd-invalid', `RAW payload expands to ${produced} bytes, declared ${length}`);
  }
  return out;
}

class Applier {
  private readonly hash: Hash = createHash('sha256');
  private readonly sandbox = new BspatchSandbox();
  private readonly buf = Buffer.allocUnsafe(IO_CHUNK_BYTES);
  private readonly zeros = Buffer.alloc(IO_CHUNK_BYTES);
  private scratch: string | null = null;

  constructor(
    private readonly source: FileHandle,
    private readonly out: Output,
    private readonly options: ApplyDeltaOptions,
  ) {}

  private async scratchDir(): Promise<string> {
    const parent =
      this.options.workDir ?? (this.out.kind === 'file' ? dirname(this.options.outFile) : tmpdir());
    this.scratch ??= await mkdtemp(join(parent, '.otter-delta-apply-'));
    return this.scratch;
  }

  async emit(bytes: Buffer, targetOffset: number): Promise<void> {
    await writeFully(this.out.fh, bytes, targetOffset);
    this.hash.update(bytes);
  }

  async copy(op: { targetOffset: number; length: number; srcOffset: number }): Promise<void> {
    for (let done = 0; done < op.length;) {
      const n = Math.min(this.buf.length, op.length - done);
      const view = this.buf.subarray(0, n);
      await readFully(this.source, view, n, op.srcOffset + done);
      await this.emit(view, op.targetOffset + done);
      done += n;
    }
  }

  async zero(op: { targetOffset: number; length: number }): Promise<void> {
    for (let done = 0; done < op.length;) {
      const n = Math.min(this.zeros.length, op.length - done);
      const view = this.zeros.subarray(0, n);
      // A fresh temporary file already reads as zeros (it is extended to full length at the end): only a
      // device needs the bytes written.
      if (this.out.kind === 'device') await writeFully(this.out.fh, view, op.targetOffset + done);
      this.hash.update(view);
      done += n;
    }
  }

  async raw(
    reader: StreamReader,
    op: { targetOffset: number; length: number; payloadLength: number },
  ): Promise<void> {
    const bytes = await inflateRaw(reader, op.payloadLength, op.length);
    await this.emit(bytes, op.targetOffset);
  }

  async bsdiff(
    reader: StreamReader,
    op: { targetOffset: number; length: number; srcOffset: number; srcLength: number; payloadLength: number },
  ): Promise<void> {
    const dir = await this.scratchDir();
    const patchPath = join(dir, 'patch');
    const oldPath = join(dir, 'old');
    const newPath = join(dir, 'new');
    try {
      const patch = await open(patchPath, 'wx', 0o600);
      try {
        let head = Buffer.alloc(0);
        let at = 0;
        for await (const chunk of reader.take(op.payloadLength, 'a BSDIFF payload')) {
          if (head.length < BSDIFF_HEADER_BYTES) {
            head = Buffer.concat([head, chunk.subarray(0, BSDIFF_HEADER_BYTES - head.length)]);
            if (head.length === BSDIFF_HEADER_BYTES)
              checkBsdiffPayloadHeader(head, op.payloadLength, op.length);
          }
          await writeFully(patch, chunk, at);
          at += chunk.length;
        }
      } finally {
        await patch.close();
      }
      const old = await open(oldPath, 'wx', 0o600);
      try {
        await copyRange(this.source, op.srcOffset, op.srcLength, old);
      } finally {
        await old.close();
      }
      const timeout =
        this.options.bspatchTimeoutMs ?? 30_000 + Math.ceil((op.srcLength + op.length) / MiB) * 1000;
      await this.sandbox.patch(oldPath, newPath, patchPath, timeout);
      const result = await open(newPath, 'r');
      try {
        const size = (await result.stat()).size;
        if (size !== op.length) {
          throw new DeltaError(
            'bsdiff-length',
            `bspatch produced ${size} bytes, operation declares ${op.length}`,
          );
        }
        for (let done = 0; done < op.length;) {
          const n = Math.min(this.buf.length, op.length - done);
          const view = this.buf.subarray(0, n);
          await readFully(result, view, n, done);
          await this.emit(view, op.targetOffset + done);
          done += n;
        }
      } finally {
        await result.close();
      }
    } finally {
      await Promise.all([patchPath, oldPath, newPath].map((p) => rm(p, { force: true })));
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }

  async close(): Promise<void> {
    await this.sandbox.close();
    if (this.scratch) await rm(this.scratch, { recursive: true, force: true });
  }
}

/** The version-1 operations, in order, each checked before any of its bytes is written. */
async function applyOperations(
  reader: StreamReader,
  header: DeltaHeader,
  applier: Applier,
  maxOperationBytes: number,
  options: ApplyDeltaOptions,
): Promise<void> {
  let cursor = 0;
  let previousStart = 0;
  for (let i = 0; i < header.operationCount; i++) {
    const first = await reader.readExact(1, `operation ${i}`);
    const type = operationType(first[0]!);
    const rest = await reader.readExact(OP_HEADER_BYTES[type] - 1, `operation ${i}'s header`);
    const op = decodeOperation(Buffer.concat([first, rest]));
    checkOperation(op, cursor, previousStart, header, maxOperationBytes);
    switch (op.type) {
      case OP_COPY:
        await applier.copy(op);
        break;
      case OP_ZERO:
        await applier.zero(op);
        break;
      case OP_RAW:
        await applier.raw(reader, op);
        break;
      case OP_BSDIFF:
        await applier.bsdiff(reader, op);
        break;
    }
    previousStart = op.targetOffset;
    cursor = op.targetOffset + op.length;
    options.onProgress?.(cursor, header.target.length);
  }
  if (cursor !== header.target.length) {
    throw new DeltaError('incomplete', `operations end at ${cursor} of ${header.target.length} bytes`);
  }
}

/**
 * Applies a delta, streaming it once. Refuses before writing anything: a header that does not describe
 * `expectedTarget`, and a source whose length or sha256 is not the delta's source (a node whose current slot
 * is another image). Refuses each operation before writing any of its bytes (see checkOperation, inflateRaw,
 * checkBsdiffPayloadHeader). The result is verified against `expectedTarget` (and read back) before a file
 * output replaces `outFile`; a failed apply leaves a file `outFile` untouched and removes the temporary.
 */
export async function applyDelta(options: ApplyDeltaOptions): Promise<ApplyDeltaResult> {
  const expected: ImageIdentity = {
    length: options.expectedTarget.length,
    sha256: assertSha256Hex(options.expectedTarget.sha256, 'expectedTarget.sha256'),
  };
  if (!Number.isSafeInteger(expected.length) || expected.length < 0) {
    throw new DeltaError('bad-output', 'expectedTarget.length must be a non-negative integer');
  }
  const maxOutputBytes = options.maxOutputBytes ?? expected.length;
  if (expected.length > maxOutputBytes) {
    throw new DeltaError('too-large', `target of ${expected.length} bytes exceeds maxOutputBytes`);
  }
  const maxOperationBytes = options.maxOperationBytes ?? DEFAULT_MAX_OPERATION_BYTES;
  const reader = new StreamReader(options.delta);
  let source: FileHandle | undefined;
  let out: Output | undefined;
  let applier: Applier | undefined;
  let committed = false;
  try {
    // The version decides how the rest is read: an applier refuses versions it does not know before opening
    // anything (unsupported-version), which is what an old agent does with a newer delta.
    const head = await reader.readExact(DELTA_HEADER_BYTES, 'the header');
    const header: DeltaHeader | DeltaHeaderV2 =
      headerVersion(head) === DELTA_FORMAT_VERSION_2 ? decodeHeaderV2(head) : decodeHeader(head);
    checkTarget(header.target, expected);
    if (header.version === DELTA_FORMAT_VERSION_2) checkHeaderV2(header, maxOperationBytes);
    else checkHeader(header, maxOperationBytes);

    source = await open(options.sourceFile, 'r');
    const sourceStat = await source.stat();
    if (!sourceStat.isFile() && !sourceStat.isBlockDevice()) {
      throw new DeltaError('source-mismatch', `${options.sourceFile} is neither a file nor a block device`);
    }
    if (sourceStat.isFile() && sourceStat.size !== header.source.length) {
      throw new DeltaError('source-mismatch', 'the current image is not the delta source (length differs)', {
        length: sourceStat.size,
        deltaSource: header.source,
      });
    }
    let sourceSha: string;
    try {
      sourceSha = await sha256OfRange(source, header.source.length);
    } catch (e) {
      if (e instanceof DeltaError && e.reason === 'truncated') {
        throw new DeltaError('source-mismatch', 'the current image is shorter than the delta source');
      }
      throw e;
    }
    if (sourceSha !== header.source.sha256) {
      throw new DeltaError('source-mismatch', 'the current image is not the delta source (sha256 differs)', {
        sha256: sourceSha,
        deltaSource: header.source,
      });
    }

    out = await openOutput(options.outFile, sourceStat);
    applier = new Applier(source, out, options);
    if (header.version === DELTA_FORMAT_VERSION_2) {
      const v2Applier = applier;
      await applySegments(reader, header, source, async (bytes, targetOffset) => {
        await v2Applier.emit(bytes, targetOffset);
        options.onProgress?.(targetOffset + bytes.length, header.target.length);
      });
    } else {
      await applyOperations(reader, header, applier, maxOperationBytes, options);
    }
    if (!(await reader.atEnd())) throw new DeltaError('trailing-data', 'bytes follow the last operation');

    const sha256 = applier.digest();
    if (sha256 !== expected.sha256) {
      throw new DeltaError('result-mismatch', 'the result does not match the expected target', { sha256 });
    }
    if (out.kind === 'file') {
      await out.fh.truncate(header.target.length);
      const size = (await out.fh.stat()).size;
      if (size !== header.target.length) throw new DeltaError('result-mismatch', `result is ${size} bytes`);
    }
    await out.fh.sync();
    if (options.readBack ?? true) {
      const again = await sha256OfRange(out.fh, header.target.length);
      if (again !== expected.sha256) {
        throw new DeltaError('result-mismatch', 'the written image reads back differently', {
          sha256: again,
        });
      }
    }
    await out.fh.close();
    if (out.kind === 'file') {
      await rename(out.tempPath!, options.outFile);
      const dir = await open(dirname(options.outFile), 'r');
      await dir.sync().finally(() => dir.close());
    }
    committed = true;
    return { length: header.target.length, sha256 };
  } finally {
    await applier?.close().catch(() => undefined);
    await source?.close().catch(() => undefined);
    if (!committed) {
      await out?.fh.close().catch(() => undefined);
      if (out?.tempPath) await unlink(out.tempPath).catch(() => undefined);
      await reader.close().catch(() => undefined);
    }
  }
}
