import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rename, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createZstdCompress } from 'node:zlib';
import { bsdiffFiles } from './bsdiff.js';
import {
  DELTA_FORMAT_VERSION,
  DELTA_HEADER_BYTES,
  DeltaError,
  OP_BSDIFF,
  OP_COPY,
  OP_HEADER_BYTES,
  OP_RAW,
  OP_ZERO,
  checkBsdiffPayloadHeader,
  decodeOperation,
  encodeHeader,
  encodeOperation,
  operationType,
} from './format.js';
import { copyRange, readFully, writeFully } from './io.js';
import { planDelta, reportProgress, type DeltaPlan, type ExtentItem, type ProgressListener } from './plan.js';

/** zstd level for RAW payloads: close to level 19's size on image data at a fraction of its time and memory. */
export const RAW_ZSTD_LEVEL = 9;
/** A RAW payload this small cannot be beaten by a bsdiff patch (its header and three bzip2 streams alone). */
const RAW_ALWAYS_WINS_BYTES = 128;

export interface BuildExtentOptions {
  /** Local paths of the same images, when the worker holds them somewhere else than the plan says. */
  sourceFile?: string;
  targetFile?: string;
  /** Where the temporary bsdiff inputs and patch go (default: the OS temp directory). */
  workDir?: string;
}

/** zstd-compresses target bytes [offset, offset + length), streamed; returns the compressed chunks. */
async function compressRange(file: string, offset: number, length: number): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  await pipeline(
    createReadStream(file, { start: offset, end: offset + length - 1, highWaterMark: 1024 * 1024 }),
    createZstdCompress({
      pledgedSrcSize: length,
      params: {
        [zlibConstants.ZSTD_c_compressionLevel]: RAW_ZSTD_LEVEL,
        [zlibConstants.ZSTD_c_checksumFlag]: 1,
      },
    }),
    async (compressed: AsyncIterable<Buffer>) => {
      for await (const chunk of compressed) chunks.push(chunk);
    },
  );
  return chunks;
}

function rawOperation(item: ExtentItem, chunks: Buffer[]): Buffer {
  const payloadLength = chunks.reduce((n, c) => n + c.length, 0);
  const header = encodeOperation({
    type: OP_RAW,
    targetOffset: item.targetOffset,
    length: item.length,
    payloadLength,
  });
  const op = Buffer.allocUnsafe(header.length + payloadLength);
  header.copy(op, 0);
  let at = header.length;
  for (const chunk of chunks) at += chunk.copy(op, at);
  return op;
}

async function copyFileRange(from: string, offset: number, length: number, to: string): Promise<void> {
  const src = await open(from, 'r');
  try {
    const dst = await open(to, 'wx', 0o600);
    try {
      await copyRange(src, offset, length, dst);
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/**
 * Builds one changed extent into its encoded operation (operation header + payload): bsdiff against the
 * item's window when that is smaller than the zstd-compressed bytes, RAW otherwise. Holds at most the
 * compressed extent and the patch in memory; bsdiff itself holds ~17x the window + 3x the extent.
 */
export async function buildExtent(item: ExtentItem, options: BuildExtentOptions = {}): Promise<Buffer> {
  const targetFile = options.targetFile ?? item.targetFile;
  const sourceFile = options.sourceFile ?? item.sourceFile;
  const compressed = await compressRange(targetFile, item.targetOffset, item.length);
  const rawPayloadLength = compressed.reduce((n, c) => n + c.length, 0);
  if (item.kind === 'raw' || !item.window || rawPayloadLength <= RAW_ALWAYS_WINS_BYTES) {
    return rawOperation(item, compressed);
  }
  const window = item.window;
  const dir = await mkdtemp(join(options.workDir ?? tmpdir(), 'otter-delta-extent-'));
  try {
    const oldPath = join(dir, 'old');
    const newPath = join(dir, 'new');
    const patchPath = join(dir, 'patch');
    await copyFileRange(targetFile, item.targetOffset, item.length, newPath);
    await copyFileRange(sourceFile, window.srcOffset, window.srcLength, oldPath);
    await bsdiffFiles(oldPath, newPath, patchPath, { oldBytes: window.srcLength, newBytes: item.length });
    await rm(oldPath);
    await rm(newPath);
    const payloadLength = (await stat(patchPath)).size;
    if (payloadLength >= rawPayloadLength) return rawOperation(item, compressed);
    compressed.length = 0;
    const header = encodeOperation({
      type: OP_BSDIFF,
      targetOffset: item.targetOffset,
      length: item.length,
      srcOffset: window.srcOffset,
      srcLength: window.srcLength,
      payloadLength,
    });
    const op = Buffer.allocUnsafe(header.length + payloadLength);
    header.copy(op, 0);
    const patch = await open(patchPath, 'r');
    try {
      await readFully(patch, op.subarray(header.length), payloadLength, 0);
    } finally {
      await patch.close();
    }
    return op;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface OperationCounts {
  copy: number;
  zero: number;
  bsdiff: number;
  raw: number;
}

export interface AssembleResult {
  patchLength: number;
  operations: OperationCounts;
  /** The header's maxOperationBytes: the most an applier buffers for one operation. */
  maxOperationBytes: number;
}

/** Built operations by item id, or a function that builds or fetches one (called once per item, in order). */
export type BuiltOperations = ReadonlyArray<Uint8Array> | ((item: ExtentItem) => Promise<Uint8Array>);

/** Refuses a built operation that does not encode exactly the plan's item (a mixed-up job result). */
function checkBuiltOperation(item: ExtentItem, bytes: Uint8Array): { type: number; buffered: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = buf.length > 0 ? operationType(buf[0]!) : -1;
  if ((type !== OP_BSDIFF && type !== OP_RAW) || buf.length < OP_HEADER_BYTES[type]) {
    throw new DeltaError(
      'bad-plan',
      `built operation for extent ${item.id} is not a BSDIFF or RAW operation`,
    );
  }
  const op = decodeOperation(buf.subarray(0, OP_HEADER_BYTES[type]));
  if (op.type !== OP_BSDIFF && op.type !== OP_RAW) throw new DeltaError('bad-plan', 'unreachable');
  const expectedLength = OP_HEADER_BYTES[type] + op.payloadLength;
  if (op.targetOffset !== item.targetOffset || op.length !== item.length || buf.length !== expectedLength) {
    throw new DeltaError('bad-plan', `built operation for extent ${item.id} does not match the plan`, {
      item: item.id,
    });
  }
  if (op.type === OP_BSDIFF) {
    if (!item.window || op.srcOffset !== item.window.srcOffset || op.srcLength !== item.window.srcLength) {
      throw new DeltaError('bad-plan', `built operation for extent ${item.id} diffs against another window`);
    }
    checkBsdiffPayloadHeader(buf.subarray(OP_HEADER_BYTES[type]), op.payloadLength, op.length);
    return { type, buffered: Math.max(op.length, op.srcLength, op.payloadLength) };
  }
  return { type, buffered: Math.max(op.length, op.payloadLength) };
}

/**
 * Writes the delta file: header, then every planned operation in target order, taking each extent's built
 * operation from `built`. Streams to a temporary file next to `outFile` and renames it into place, so a
 * crash never leaves a partial delta under the final name.
 */
export async function assembleDelta(
  plan: DeltaPlan,
  built: BuiltOperations,
  outFile: string,
): Promise<AssembleResult> {
  if (plan.formatVersion !== DELTA_FORMAT_VERSION)
    throw new DeltaError('bad-plan', 'unsupported plan version');
  const get =
    typeof built === 'function'
      ? built
      : (item: ExtentItem): Promise<Uint8Array | undefined> => Promise.resolve(built[item.id]);
  const counts: OperationCounts = { copy: 0, zero: 0, bsdiff: 0, raw: 0 };
  let maxOperationBytes = 0;
  const tempPath = join(dirname(outFile), `.${basename(outFile)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tempPath, 'wx', 0o644);
  let renamed = false;
  try {
    let position = DELTA_HEADER_BYTES;
    let expectedOffset = 0;
    for (const planned of plan.operations) {
      if (planned.targetOffset !== expectedOffset || planned.length <= 0) {
        throw new DeltaError('bad-plan', 'plan operations are not contiguous');
      }
      expectedOffset += planned.length;
      let bytes: Uint8Array;
      if (planned.type === 'copy') {
        bytes = encodeOperation({
          type: OP_COPY,
          targetOffset: planned.targetOffset,
          length: planned.length,
          srcOffset: planned.srcOffset,
        });
        counts.copy++;
      } else if (planned.type === 'zero') {
        bytes = encodeOperation({
          type: OP_ZERO,
          targetOffset: planned.targetOffset,
          length: planned.length,
        });
        counts.zero++;
      } else {
        const item = plan.items[planned.item];
        if (!item || item.targetOffset !== planned.targetOffset || item.length !== planned.length) {
          throw new DeltaError('bad-plan', `plan operation refers to a missing or different extent`);
        }
        const builtBytes = await get(item);
        if (!builtBytes) throw new DeltaError('bad-plan', `no built operation for extent ${item.id}`);
        bytes = builtBytes;
        const { type, buffered } = checkBuiltOperation(item, bytes);
        if (type === OP_BSDIFF) counts.bsdiff++;
        else counts.raw++;
        maxOperationBytes = Math.max(maxOperationBytes, buffered);
      }
      await writeFully(fh, bytes, position);
      position += bytes.length;
    }
    if (expectedOffset !== plan.target.length)
      throw new DeltaError('bad-plan', 'plan does not cover the target');
    const header = encodeHeader({
      version: DELTA_FORMAT_VERSION,
      blockSize: plan.blockSize,
      source: plan.source,
      target: plan.target,
      operationCount: plan.operations.length,
      maxOperationBytes,
    });
    await writeFully(fh, header, 0);
    await fh.sync();
    await fh.close();
    await rename(tempPath, outFile);
    renamed = true;
    return { patchLength: position, operations: counts, maxOperationBytes };
  } finally {
    if (!renamed) {
      await fh.close().catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
    }
  }
}

export interface BuildDeltaOptions {
  sourceFile: string;
  targetFile: string;
  outFile: string;
  /** Bytes the build may use on top of the process baseline; default 1024 MiB. See extentLimitsFor. */
  memoryBudgetBytes?: number;
  onProgress?: ProgressListener;
  workDir?: string;
  blockSize?: number;
}

export interface BuildDeltaResult {
  patchLength: number;
  operations: OperationCounts;
  /** The largest extent input handled at once: old window + new extent bytes (the extent alone for 'raw'). */
  peakExtentBytes: number;
  maxExtentBytes: number;
  maxWindowBytes: number;
  source: { length: number; sha256: string };
  target: { length: number; sha256: string };
  seconds: number;
}

/** Plans and builds a whole delta in this process, one extent at a time (the unit a worker fans out). */
export async function buildDelta(options: BuildDeltaOptions): Promise<BuildDeltaResult> {
  const started = performance.now();
  const plan = await planDelta(options);
  const totalExtentBytes = plan.items.reduce((n, item) => n + item.length, 0);
  let builtBytes = 0;
  let peakExtentBytes = 0;
  reportProgress(options.onProgress, 'build', 0, totalExtentBytes);
  const assembled = await assembleDelta(
    plan,
    async (item) => {
      const op = await buildExtent(item, { workDir: options.workDir });
      peakExtentBytes = Math.max(peakExtentBytes, item.length + (item.window?.srcLength ?? 0));
      builtBytes += item.length;
      reportProgress(options.onProgress, 'build', builtBytes, totalExtentBytes);
      return op;
    },
    options.outFile,
  );
  return {
    patchLength: assembled.patchLength,
    operations: assembled.operations,
    peakExtentBytes,
    maxExtentBytes: plan.limits.maxExtentBytes,
    maxWindowBytes: plan.limits.maxWindowBytes,
    source: plan.source,
    target: plan.target,
    seconds: (performance.now() - started) / 1000,
  };
}
