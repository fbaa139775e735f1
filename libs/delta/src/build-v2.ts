import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { constants as zlibConstants, zstdCompressSync } from 'node:zlib';
import { DELTA_HEADER_BYTES, DeltaError } from './format.js';
import {
  ControlWriter,
  DELTA_FORMAT_VERSION_2,
  MAX_SEGMENT_BYTES,
  MIN_SEGMENT_BYTES,
  encodeHeaderV2,
  encodeSegmentHeader,
  segmentCountFor,
} from './format-v2.js';
import { readFully, writeFully } from './io.js';
import { Covers, Matcher, SourceIndex } from './match.js';

const MiB = 1024 * 1024;

/**
 * Target bytes per segment. The applier holds about three segments' worth (output, differences + literals,
 * payloads, the decoder window): 8 MiB segments measured 36.9 MiB above the applier's baseline, over issue
 * 13's 32 MiB; 4 MiB costs ~0.01% in patch size on the esbuild pair (166 674 vs 166 658 bytes at level 19).
 */
export const DEFAULT_SEGMENT_BYTES = 4 * MiB;
/**
 * zstd level of the three streams. Measured on the esbuild 0.25.4 -> 0.25.5 pair (10 MB): level 19 gives
 * 166.7 KB, 21 161.3 KB, 22 158.3 KB (the diff stream is 95% of it); 22 costs several seconds more on 10 MB.
 */
export const DEFAULT_V2_ZSTD_LEVEL = 22;
/** Smallest source sampling step; a larger one is chosen when the index would not fit the budget. */
const MIN_SAMPLE_STEP = 4;
/**
 * Held on top of the arrays counted in sampleStepFor: the level-22 zstd context, I/O buffers, the control
 * stream. Measured in the quick bench: peak above baseline minus source, index and segments was 142 MiB
 * (esbuild pair) and 144 MiB (48 MiB ext4 pair).
 */
const V2_RESERVE_BYTES = 160 * MiB;

export interface BuildDeltaV2Options {
  sourceFile: string;
  targetFile: string;
  outFile: string;
  /** What the build may add on top of the process's baseline (default 1024 MiB). */
  memoryBudgetBytes?: number;
  /** Target bytes per segment: a power of two in [64 KiB, 64 MiB] (default 4 MiB). */
  segmentBytes?: number;
  zstdLevel?: number;
}

export interface BuildDeltaV2Result {
  patchLength: number;
  source: { length: number; sha256: string };
  target: { length: number; sha256: string };
  segments: number;
  /** Source sampling step the index used (bytes between anchors). */
  sampleStep: number;
  covers: number;
  coveredBytes: number;
  literalBytes: number;
  /** Compressed bytes of each stream over all segments. */
  streams: { control: number; diff: number; literal: number };
}

/**
 * The v2 memory rule: the whole source (the matcher extends into it byte by byte), its anchor index, and
 * per segment the target bytes, the diff and literal streams (together one segment) and the compressed
 * output. Picks the smallest sampling step (densest index) that fits; refuses a budget that cannot hold the
 * source and an index at step 64 next to that reserve.
 */
export function sampleStepFor(sourceLength: number, segmentBytes: number, budget: number): number {
  const fixed = V2_RESERVE_BYTES + sourceLength + 3 * segmentBytes;
  for (let step = MIN_SAMPLE_STEP; step <= 64; step *= 2) {
    if (fixed + SourceIndex.bytesFor(sourceLength, step) <= budget) return step;
  }
  throw new DeltaError(
    'budget-too-small',
    `a memory budget of ${budget} bytes cannot hold a ${sourceLength}-byte source and its index`,
    { memoryBudgetBytes: budget, needed: fixed + SourceIndex.bytesFor(sourceLength, 64) },
  );
}

function compress(bytes: Uint8Array, level: number): Buffer {
  if (bytes.length === 0) return Buffer.alloc(0);
  // The window never needs to exceed the stream, so an applier can cap its decoder at ceil(log2(length)).
  const windowLog = Math.max(10, Math.ceil(Math.log2(bytes.length)));
  return zstdCompressSync(bytes, {
    params: {
      [zlibConstants.ZSTD_c_compressionLevel]: level,
      [zlibConstants.ZSTD_c_windowLog]: windowLog,
    },
  });
}

async function readWhole(path: string): Promise<{ bytes: Buffer; sha256: string }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const bytes = Buffer.allocUnsafe(size);
    await readFully(fh, bytes, size, 0);
    return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
  } finally {
    await fh.close();
  }
}

async function sha256OfFile(path: string): Promise<{ length: number; sha256: string }> {
  const fh = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(MiB);
    let length = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, length);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      length += bytesRead;
    }
    return { length, sha256: hash.digest('hex') };
  } finally {
    await fh.close();
  }
}

/** Splits one matched segment into the three raw streams (control varints, differences, literals). */
function encodeSegment(
  segment: Buffer,
  segmentStart: number,
  source: Uint8Array,
  covers: Covers,
  control: ControlWriter,
  diff: Uint8Array,
  literal: Uint8Array,
): { diffLength: number; literalLength: number } {
  control.reset();
  let diffLength = 0;
  let literalLength = 0;
  let at = 0;
  // Three columns, each a run of similar numbers (zstd compresses them better than interleaved triples):
  // every gap, then every source offset, then every length. A source offset is coded against where the
  // previous cover's displacement would put it, so content that did not move (or moved with its
  // neighbours) codes as 0.
  for (let c = 0; c < covers.count; c++) {
    control.varint(covers.newStart[c]! - (c === 0 ? 0 : covers.newStart[c - 1]! + covers.length[c - 1]!));
  }
  let expectedOld = segmentStart;
  for (let c = 0; c < covers.count; c++) {
    const gap = covers.newStart[c]! - (c === 0 ? 0 : covers.newStart[c - 1]! + covers.length[c - 1]!);
    control.signed(covers.oldStart[c]! - (expectedOld + gap));
    expectedOld = covers.oldStart[c]! + covers.length[c]!;
  }
  for (let c = 0; c < covers.count; c++) control.varint(covers.length[c]!);
  for (let c = 0; c < covers.count; c++) {
    const start = covers.newStart[c]!;
    const oldStart = covers.oldStart[c]!;
    const length = covers.length[c]!;
    literal.set(segment.subarray(at, start), literalLength);
    literalLength += start - at;
    for (let k = 0; k < length; k++)
      diff[diffLength + k] = (segment[start + k]! - source[oldStart + k]!) & 0xff;
    diffLength += length;
    at = start + length;
  }
  literal.set(segment.subarray(at), literalLength);
  literalLength += segment.length - at;
  return { diffLength, literalLength };
}

/**
 * Builds a version-2 delta from sourceFile to targetFile into outFile (written as a temporary file next to it
 * and renamed when complete). Holds the source and its index in memory, and one target segment at a time.
 */
export async function buildDeltaV2(options: BuildDeltaV2Options): Promise<BuildDeltaV2Result> {
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (
    segmentBytes < MIN_SEGMENT_BYTES ||
    segmentBytes > MAX_SEGMENT_BYTES ||
    (segmentBytes & (segmentBytes - 1)) !== 0
  ) {
    throw new DeltaError(
      'bad-header',
      `segment size ${segmentBytes} is not a power of two in [64 KiB, 64 MiB]`,
    );
  }
  const level = options.zstdLevel ?? DEFAULT_V2_ZSTD_LEVEL;
  const budget = options.memoryBudgetBytes ?? 1024 * MiB;
  const target = await sha256OfFile(options.targetFile);
  const { bytes: sourceBytes, sha256: sourceSha256 } = await readWhole(options.sourceFile);
  const sampleStep = sampleStepFor(sourceBytes.length, segmentBytes, budget);
  const matcher = new Matcher(new SourceIndex(sourceBytes, sampleStep));

  const segmentCount = segmentCountFor(target.length, segmentBytes);
  const tempPath = join(
    dirname(options.outFile),
    `.${basename(options.outFile)}.otter-delta-${randomBytes(6).toString('hex')}.tmp`,
  );
  const out = await open(tempPath, 'wx', 0o644);
  const input = await open(options.targetFile, 'r');
  const result: BuildDeltaV2Result = {
    patchLength: 0,
    source: { length: sourceBytes.length, sha256: sourceSha256 },
    target,
    segments: segmentCount,
    sampleStep,
    covers: 0,
    coveredBytes: 0,
    literalBytes: 0,
    streams: { control: 0, diff: 0, literal: 0 },
  };
  try {
    const segment = Buffer.allocUnsafe(Math.min(segmentBytes, Math.max(target.length, 1)));
    const diff = new Uint8Array(segment.length);
    const literal = new Uint8Array(segment.length);
    const control = new ControlWriter();
    const covers = new Covers();
    let position = DELTA_HEADER_BYTES;
    let maxPayloadBytes = 0;
    for (let s = 0; s < segmentCount; s++) {
      const segmentStart = s * segmentBytes;
      const length = Math.min(segmentBytes, target.length - segmentStart);
      const view = segment.subarray(0, length);
      await readFully(input, view, length, segmentStart);
      covers.reset();
      matcher.match(view, segmentStart, covers);
      const { diffLength, literalLength } = encodeSegment(
        view,
        segmentStart,
        sourceBytes,
        covers,
        control,
        diff,
        literal,
      );
      const streams = [
        compress(control.bytes(), level),
        compress(diff.subarray(0, diffLength), level),
        compress(literal.subarray(0, literalLength), level),
      ] as const;
      const head = encodeSegmentHeader({
        coverCount: covers.count,
        controlLength: control.length,
        controlPayload: streams[0].length,
        diffPayload: streams[1].length,
        literalPayload: streams[2].length,
      });
      for (const part of [head, ...streams]) {
        await writeFully(out, part, position);
        position += part.length;
      }
      maxPayloadBytes = Math.max(maxPayloadBytes, streams[0].length + streams[1].length + streams[2].length);
      result.covers += covers.count;
      result.coveredBytes += diffLength;
      result.literalBytes += literalLength;
      result.streams.control += streams[0].length;
      result.streams.diff += streams[1].length;
      result.streams.literal += streams[2].length;
    }
    const header = encodeHeaderV2({
      version: DELTA_FORMAT_VERSION_2,
      segmentBytes,
      source: result.source,
      target,
      segmentCount,
      maxPayloadBytes,
    });
    await writeFully(out, header, 0);
    await out.sync();
    result.patchLength = position;
    await out.close();
    await rename(tempPath, options.outFile);
    return result;
  } catch (e) {
    await out.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    throw e;
  } finally {
    await input.close();
  }
}
