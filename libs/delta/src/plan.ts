import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { BlockIndex, blockFingerprint } from './block-index.js';
import { DELTA_FORMAT_VERSION, DeltaError, type ImageIdentity } from './format.js';
import { IO_CHUNK_BYTES, readFully } from './io.js';
import {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MEMORY_BUDGET_BYTES,
  MIN_WINDOW_MARGIN_BYTES,
  extentLimitsFor,
  type ExtentLimits,
} from './limits.js';

/** A run of at least this many repetitive blocks is stored compressed instead of being given to bsdiff. */
export const REPETITIVE_RUN_BLOCKS = 4;
/** Periods up to this many bytes count as repetitive (a fill byte is period 1). */
const MAX_REPETITION_PERIOD = 64;

const CLASS_ZERO = -1;
const CLASS_CHANGED = -2;
const CLASS_REPETITIVE = -3;

export type DeltaPhase = 'index' | 'scan' | 'build';

export interface DeltaProgress {
  phase: DeltaPhase;
  /** Bytes of this phase done and in total (source bytes, target bytes, changed-extent bytes). */
  done: number;
  total: number;
  /** Whole-build estimate, 0..100: index 0-20, scan 20-40, build 40-100. */
  percent: number;
}

export type ProgressListener = (progress: DeltaProgress) => void;

const PHASE_SPAN: Readonly<Record<DeltaPhase, [number, number]>> = {
  index: [0, 20],
  scan: [20, 40],
  build: [40, 100],
};

export function reportProgress(
  listener: ProgressListener | undefined,
  phase: DeltaPhase,
  done: number,
  total: number,
): void {
  if (!listener) return;
  const [from, to] = PHASE_SPAN[phase];
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  listener({ phase, done, total, percent: Math.round((from + (to - from) * fraction) * 10) / 10 });
}

/** A changed target extent: one independent work item that becomes exactly one BSDIFF or RAW operation. */
export interface ExtentItem {
  /** Index in plan.items, and the order in which assembleDelta expects built operations. */
  id: number;
  sourceFile: string;
  targetFile: string;
  targetOffset: number;
  length: number;
  /**
   * 'diff': bsdiff against `window`, or RAW if that is not smaller. 'raw': repetitive data (which makes bsdiff
   * quadratic) or no source to diff against: stored zstd-compressed without calling bsdiff.
   */
  kind: 'diff' | 'raw';
  /** The old-image region bsdiff gets as its old input; null for 'raw'. */
  window: { srcOffset: number; srcLength: number } | null;
}

export type PlannedOperation =
  | { type: 'copy'; targetOffset: number; length: number; srcOffset: number }
  | { type: 'zero'; targetOffset: number; length: number }
  | { type: 'extent'; targetOffset: number; length: number; item: number };

/** Everything needed to build and assemble a delta; plain data, so it can travel in a job. */
export interface DeltaPlan {
  formatVersion: typeof DELTA_FORMAT_VERSION;
  blockSize: number;
  sourceFile: string;
  targetFile: string;
  source: ImageIdentity;
  target: ImageIdentity;
  limits: ExtentLimits;
  /** In target order, contiguous, covering [0, target.length) exactly. */
  operations: PlannedOperation[];
  items: ExtentItem[];
}

export interface PlanDeltaOptions {
  sourceFile: string;
  targetFile: string;
  /** Default 1024 MiB; see extentLimitsFor for what it implies. */
  memoryBudgetBytes?: number;
  blockSize?: number;
  onProgress?: ProgressListener;
}

function isAllZero(view: Buffer, zeros: Buffer): boolean {
  return view.length === zeros.length ? view.equals(zeros) : view.equals(zeros.subarray(0, view.length));
}

/**
 * True when the block repeats with a short period (a fill byte, a repeated word or struct). bsdiff's match
 * search is quadratic on such runs, so they never reach it. Cheap on ordinary data: the memcmp only runs for
 * periods whose first two bytes already repeat.
 */
export function isRepetitive(view: Buffer): boolean {
  const n = view.length;
  if (n < 2 * MAX_REPETITION_PERIOD) return false;
  for (let p = 1; p <= MAX_REPETITION_PERIOD; p++) {
    if (view[p] !== view[0] || view[p + 1] !== view[1]) continue;
    if (view.compare(view, p, n, 0, n - p) === 0) return true;
  }
  return false;
}

/** Random-access reads of source blocks for verifying fingerprint hits, cached in aligned chunks. */
class SourceBlockReader {
  private readonly chunk: Buffer;
  private chunkStart = -1;
  private chunkLength = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly sourceLength: number,
    blockSize: number,
  ) {
    this.chunk = Buffer.allocUnsafe(Math.max(256 * 1024, blockSize));
  }

  /** Whether source bytes [offset, offset + view.length) equal view; offset is block-aligned. */
  async equals(offset: number, view: Buffer): Promise<boolean> {
    if (offset < 0 || offset + view.length > this.sourceLength) return false;
    const start = offset - (offset % this.chunk.length);
    if (start !== this.chunkStart) {
      this.chunkLength = Math.min(this.chunk.length, this.sourceLength - start);
      await readFully(this.fh, this.chunk, this.chunkLength, start);
      this.chunkStart = start;
    }
    const at = offset - start;
    return this.chunk.compare(view, 0, view.length, at, at + view.length) === 0;
  }
}

async function fileLength(fh: FileHandle, path: string): Promise<number> {
  const stat = await fh.stat();
  if (!stat.isFile()) throw new DeltaError('bad-plan', `${path} is not a regular file`);
  return stat.size;
}

/** Pass 1: fingerprint every non-zero full source block and hash the whole source. */
async function indexSource(
  fh: FileHandle,
  length: number,
  blockSize: number,
  onProgress: ProgressListener | undefined,
): Promise<{ index: BlockIndex; sha256: string }> {
  const index = new BlockIndex(Math.floor(length / blockSize));
  const sha = createHash('sha256');
  const zeros = Buffer.alloc(blockSize);
  const buf = Buffer.allocUnsafe(Math.max(IO_CHUNK_BYTES, blockSize));
  for (let position = 0; position < length;) {
    const n = Math.min(buf.length, length - position);
    await readFully(fh, buf, n, position);
    sha.update(buf.subarray(0, n));
    for (let at = 0; at + blockSize <= n; at += blockSize) {
      const view = buf.subarray(at, at + blockSize);
      if (view.equals(zeros)) continue;
      const [low, high] = blockFingerprint(view);
      index.add((position + at) / blockSize, low, high);
    }
    position += n;
    reportProgress(onProgress, 'index', position, length);
  }
  return { index, sha256: sha.digest('hex') };
}

/**
 * Pass 2: classify every target block as zero, a verified copy of a source block (preferring the block after
 * the previous block's match, so moved runs stay one extent), repetitive, or changed.
 */
async function classifyTarget(
  fh: FileHandle,
  length: number,
  blockSize: number,
  index: BlockIndex,
  source: SourceBlockReader,
  sourceLength: number,
  onProgress: ProgressListener | undefined,
): Promise<{ classes: Int32Array; sha256: string }> {
  const classes = new Int32Array(Math.ceil(length / blockSize));
  const sha = createHash('sha256');
  const zeros = Buffer.alloc(blockSize);
  const buf = Buffer.allocUnsafe(Math.max(IO_CHUNK_BYTES, blockSize));
  const sourceTailBlock = sourceLength % blockSize === 0 ? -1 : Math.floor(sourceLength / blockSize);
  for (let position = 0; position < length;) {
    const n = Math.min(buf.length, length - position);
    await readFully(fh, buf, n, position);
    sha.update(buf.subarray(0, n));
    for (let at = 0; at < n; at += blockSize) {
      const view = buf.subarray(at, Math.min(at + blockSize, n));
      const block = (position + at) / blockSize;
      if (isAllZero(view, zeros)) {
        classes[block] = CLASS_ZERO;
        continue;
      }
      const previous = block > 0 ? classes[block - 1]! : -1;
      let match = -1;
      if (view.length === blockSize) {
        const [low, high] = blockFingerprint(view);
        if (previous >= 0 && index.matches(previous + 1, low, high)) {
          if (await source.equals((previous + 1) * blockSize, view)) match = previous + 1;
        }
        if (match < 0) {
          const candidate = index.find(low, high);
          if (candidate >= 0 && (await source.equals(candidate * blockSize, view))) match = candidate;
        }
      } else {
        // The target's partial last block: the continuation of the previous copy, or the source's own tail.
        if (previous >= 0 && (await source.equals((previous + 1) * blockSize, view))) match = previous + 1;
        else if (sourceTailBlock >= 0 && (await source.equals(sourceTailBlock * blockSize, view))) {
          match = sourceTailBlock;
        }
      }
      classes[block] = match >= 0 ? match : isRepetitive(view) ? CLASS_REPETITIVE : CLASS_CHANGED;
    }
    position += n;
    reportProgress(onProgress, 'scan', position, length);
  }
  return { classes, sha256: sha.digest('hex') };
}

/** Splits [start, end) into near-equal pieces of at most `max` bytes, on block boundaries. */
function splitEvenly(start: number, end: number, max: number, blockSize: number): Array<[number, number]> {
  const pieces = Math.ceil((end - start) / max);
  const out: Array<[number, number]> = [];
  let at = start;
  for (let i = 0; i < pieces; i++) {
    const remaining = end - at;
    const share = Math.ceil(remaining / (pieces - i) / blockSize) * blockSize;
    const next = Math.min(end, at + Math.min(max, share));
    out.push([at, next]);
    at = next;
  }
  return out;
}

/** Turns block classes into operations: coalesced COPY and ZERO runs, changed runs split into extents. */
function operationsFromClasses(
  classes: Int32Array,
  targetLength: number,
  blockSize: number,
  maxExtentBytes: number,
): Array<PlannedOperation | { type: 'pending'; targetOffset: number; length: number; kind: 'diff' | 'raw' }> {
  const ops: Array<
    PlannedOperation | { type: 'pending'; targetOffset: number; length: number; kind: 'diff' | 'raw' }
  > = [];
  const end = (block: number): number => Math.min(block * blockSize, targetLength);
  const blocks = classes.length;
  let b = 0;
  while (b < blocks) {
    const c = classes[b]!;
    let e = b + 1;
    if (c === CLASS_ZERO) {
      while (e < blocks && classes[e] === CLASS_ZERO) e++;
      ops.push({ type: 'zero', targetOffset: b * blockSize, length: end(e) - b * blockSize });
    } else if (c >= 0) {
      while (e < blocks && classes[e] === classes[e - 1]! + 1) e++;
      ops.push({
        type: 'copy',
        targetOffset: b * blockSize,
        length: end(e) - b * blockSize,
        srcOffset: c * blockSize,
      });
    } else {
      while (e < blocks && (classes[e] === CLASS_CHANGED || classes[e] === CLASS_REPETITIVE)) e++;
      // Inside the changed run: long repetitive stretches become 'raw' extents, the rest 'diff' extents.
      let s = b;
      while (s < e) {
        let t = s;
        let kind: 'diff' | 'raw' = 'diff';
        if (classes[s] === CLASS_REPETITIVE) {
          while (t < e && classes[t] === CLASS_REPETITIVE) t++;
          if (t - s >= REPETITIVE_RUN_BLOCKS) kind = 'raw';
        }
        if (kind === 'diff') {
          // Extend over changed blocks and short repetitive stretches until a long repetitive run starts.
          t = s;
          while (t < e) {
            if (classes[t] === CLASS_REPETITIVE) {
              let r = t;
              while (r < e && classes[r] === CLASS_REPETITIVE) r++;
              if (r - t >= REPETITIVE_RUN_BLOCKS) break;
              t = r;
            } else t++;
          }
        }
        for (const [from, to] of splitEvenly(s * blockSize, end(t), maxExtentBytes, blockSize)) {
          ops.push({ type: 'pending', targetOffset: from, length: to - from, kind });
        }
        s = t;
      }
    }
    b = e;
  }
  return ops;
}

/**
 * The old-image window for a changed extent: around where the nearest COPY neighbour (the closer of the
 * previous and next COPY operation in target order, the previous one on a tie) says this part of the
 * image now comes from, i.e. the extent's own offset shifted by that COPY's (srcOffset - targetOffset);
 * the same offset when the target has no COPY at all. The extent plus a margin of max(extent / 2, 256 KiB)
 * on each side, at most maxWindowBytes, slid to stay inside the source.
 */
function windowFor(
  targetOffset: number,
  length: number,
  shift: number,
  sourceLength: number,
  maxWindowBytes: number,
): { srcOffset: number; srcLength: number } {
  const margin = Math.max(Math.ceil(length / 2), MIN_WINDOW_MARGIN_BYTES);
  const size = Math.min(length + 2 * margin, maxWindowBytes, sourceLength);
  const centre = targetOffset + shift + length / 2;
  let start = Math.round(centre - size / 2);
  start = Math.max(0, Math.min(start, sourceLength - size));
  return { srcOffset: start, srcLength: size };
}

/**
 * Plans a delta from `sourceFile` to `targetFile` in two streaming passes (source, then target), holding only
 * per-block tables (about 12 bytes per source block and 4 per target block), never an image.
 */
export async function planDelta(options: PlanDeltaOptions): Promise<DeltaPlan> {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (blockSize < 512 || blockSize > 1 << 20 || (blockSize & (blockSize - 1)) !== 0) {
    throw new DeltaError('bad-plan', 'blockSize must be a power of two in [512, 1 MiB]');
  }
  const sourceFh = await open(options.sourceFile, 'r');
  try {
    const targetFh = await open(options.targetFile, 'r');
    try {
      const sourceLength = await fileLength(sourceFh, options.sourceFile);
      const targetLength = await fileLength(targetFh, options.targetFile);
      const limits = extentLimitsFor(
        options.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES,
        sourceLength,
        targetLength,
        blockSize,
      );
      const indexed = await indexSource(sourceFh, sourceLength, blockSize, options.onProgress);
      const reader = new SourceBlockReader(sourceFh, sourceLength, blockSize);
      const scanned = await classifyTarget(
        targetFh,
        targetLength,
        blockSize,
        indexed.index,
        reader,
        sourceLength,
        options.onProgress,
      );
      let rough = operationsFromClasses(scanned.classes, targetLength, blockSize, limits.maxExtentBytes);
      // A pair small enough for one bsdiff within the budget gets one: bsdiff finds moved and shifted data
      // anywhere in the old image, where per-extent windows only see their neighbourhood (on a tar of npm
      // packages that is a 5x smaller patch), and one compressed stream beats many small ones.
      const wholePairFits =
        sourceLength > 0 && targetLength <= limits.maxExtentBytes && sourceLength <= limits.maxWindowBytes;
      if (wholePairFits && rough.some((op) => op.type === 'pending' && op.kind === 'diff')) {
        rough = [{ type: 'pending', targetOffset: 0, length: targetLength, kind: 'diff' }];
      }

      // Nearest COPY on each side, for each operation, in two linear passes.
      const previousCopy = new Int32Array(rough.length).fill(-1);
      const nextCopy = new Int32Array(rough.length).fill(-1);
      for (let i = 0, last = -1; i < rough.length; i++) {
        previousCopy[i] = last;
        if (rough[i]!.type === 'copy') last = i;
      }
      for (let i = rough.length - 1, last = -1; i >= 0; i--) {
        nextCopy[i] = last;
        if (rough[i]!.type === 'copy') last = i;
      }

      const items: ExtentItem[] = [];
      const operations: PlannedOperation[] = rough.map((op, i) => {
        if (op.type !== 'pending') return op;
        let shift = 0;
        const before = rough[previousCopy[i]!];
        const after = rough[nextCopy[i]!];
        const gapBefore = before ? op.targetOffset - (before.targetOffset + before.length) : Infinity;
        const gapAfter = after ? after.targetOffset - (op.targetOffset + op.length) : Infinity;
        const neighbour = gapBefore <= gapAfter ? before : after;
        if (neighbour?.type === 'copy') shift = neighbour.srcOffset - neighbour.targetOffset;
        const kind = op.kind === 'diff' && sourceLength > 0 ? 'diff' : 'raw';
        const item: ExtentItem = {
          id: items.length,
          sourceFile: options.sourceFile,
          targetFile: options.targetFile,
          targetOffset: op.targetOffset,
          length: op.length,
          kind,
          window:
            kind === 'diff' && rough.length === 1 && wholePairFits
              ? { srcOffset: 0, srcLength: sourceLength }
              : kind === 'diff'
                ? windowFor(op.targetOffset, op.length, shift, sourceLength, limits.maxWindowBytes)
                : null,
        };
        items.push(item);
        return { type: 'extent', targetOffset: op.targetOffset, length: op.length, item: item.id };
      });

      return {
        formatVersion: DELTA_FORMAT_VERSION,
        blockSize,
        sourceFile: options.sourceFile,
        targetFile: options.targetFile,
        source: { length: sourceLength, sha256: indexed.sha256 },
        target: { length: targetLength, sha256: scanned.sha256 },
        limits,
        operations,
        items,
      };
    } finally {
      await targetFh.close();
    }
  } finally {
    await sourceFh.close();
  }
}
