import { BlockIndex } from './block-index.js';
import { DeltaError } from './format.js';

const MiB = 1024 * 1024;

/** bsdiff-node holds the old input, then a suffix array and its inverse of 8-byte offsets: 17 bytes a byte. */
export const BSDIFF_OLD_BYTES_PER_BYTE = 17;
/** ...and the new input plus its diff and extra buffers: 3 bytes a byte. */
export const BSDIFF_NEW_BYTES_PER_BYTE = 3;
/** The builder's own buffers for one extent: its zstd-compressed bytes and the patch read back (<= 2x). */
export const BUILDER_BYTES_PER_EXTENT_BYTE = 2;
/** A window is at most this many times its extent: the extent plus half an extent of slack on each side. */
export const WINDOW_PER_EXTENT = 2;
/**
 * Bytes of budget one byte of maximum extent costs: 17 * 2 (window) + 3 + 2 = 39. Derived, not measured:
 * the allocations of bsdiff.c in bsdiff-node 2.5 (old, I, V; new, db, eb) plus the builder's two buffers.
 */
export const BUDGET_BYTES_PER_EXTENT_BYTE =
  BSDIFF_OLD_BYTES_PER_BYTE * WINDOW_PER_EXTENT + BSDIFF_NEW_BYTES_PER_BYTE + BUILDER_BYTES_PER_EXTENT_BYTE;
/**
 * Fixed reserve inside the budget: a zstd level-9 compression context (~24 MiB measured, used before
 * bsdiff runs) or bzip2's level-9 compressor inside bsdiff (~8 MiB, during it), and the 1 MiB I/O buffers.
 */
export const FIXED_RESERVE_BYTES = 32 * MiB;
/** Below this, per-operation overhead dominates and bsdiff finds too little context: refuse the budget. */
export const MIN_EXTENT_BYTES = 64 * 1024;
/** A small extent still gets at least this much old data on each side (bounded by the window limit). */
export const MIN_WINDOW_MARGIN_BYTES = 256 * 1024;
/** bsdiff-node reads each input with one read(), which Linux caps just under 2 GiB. */
export const BSDIFF_MAX_INPUT_BYTES = 2 * 1024 * MiB - 64 * MiB;

/**
 * Environment a process that builds deltas must be started with (glibc reads it at startup). bsdiff runs on
 * the libuv pool; each pool thread gets its own glibc arena, and glibc's dynamic mmap threshold soon puts
 * bsdiff's multi-MiB arrays inside those arenas, where freed memory stays resident: measured, a 64 MiB-budget
 * build peaked 48-72 MiB above baseline without this and a steady 30 MiB with it. A fixed threshold keeps
 * every allocation over 128 KiB in its own mapping, returned to the system when freed.
 */
export const DELTA_BUILDER_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

export const DEFAULT_BLOCK_SIZE = 4096;
export const DEFAULT_MEMORY_BUDGET_BYTES = 1024 * MiB;

export interface ExtentLimits {
  /** What the build may allocate on top of the process's own baseline (runtime and loaded code). */
  memoryBudgetBytes: number;
  /** Source fingerprint index and target block classification, held for the whole planning pass. */
  indexBytes: number;
  reservedBytes: number;
  /** Largest target extent that one BSDIFF or RAW operation covers. */
  maxExtentBytes: number;
  /** Largest old-image window given to one bsdiff call (2 x maxExtentBytes). */
  maxWindowBytes: number;
}

/** Bytes the planner's per-block tables take for a pair of these lengths. */
export function planTableBytes(sourceLength: number, targetLength: number, blockSize: number): number {
  const sourceBlocks = Math.floor(sourceLength / blockSize);
  const targetBlocks = Math.ceil(targetLength / blockSize);
  return BlockIndex.bytesFor(sourceBlocks) + targetBlocks * 4;
}

/**
 * The extent-size rule. One extent at a time is built, and its peak is
 *   17 * window + 3 * extent (bsdiff) + 2 * extent (builder) + fixed reserve + planner tables,
 * with window <= 2 * extent. So
 *   maxExtentBytes = floor((budget - 32 MiB - tables) / 39), rounded down to whole blocks,
 *   maxWindowBytes = 2 * maxExtentBytes.
 * The default 1024 MiB budget gives ~25.4 MiB extents and ~50.9 MiB windows for a small pair, and
 * ~24.9 MiB / ~49.8 MiB for a 4 GiB pair (its tables take 20 MiB). Capped so a window stays under
 * bsdiff-node's 2 GiB single-read limit.
 */
export function extentLimitsFor(
  memoryBudgetBytes: number,
  sourceLength: number,
  targetLength: number,
  blockSize: number = DEFAULT_BLOCK_SIZE,
): ExtentLimits {
  if (!Number.isSafeInteger(memoryBudgetBytes) || memoryBudgetBytes <= 0) {
    throw new DeltaError('budget-too-small', 'memoryBudgetBytes must be a positive integer');
  }
  const indexBytes = planTableBytes(sourceLength, targetLength, blockSize);
  const available = memoryBudgetBytes - FIXED_RESERVE_BYTES - indexBytes;
  const perExtent = Math.floor(available / BUDGET_BYTES_PER_EXTENT_BYTE);
  const maxWindowCap = Math.floor(BSDIFF_MAX_INPUT_BYTES / WINDOW_PER_EXTENT);
  const maxExtentBytes = Math.floor(Math.min(perExtent, maxWindowCap) / blockSize) * blockSize;
  if (maxExtentBytes < Math.max(MIN_EXTENT_BYTES, blockSize)) {
    const needed =
      FIXED_RESERVE_BYTES + indexBytes + Math.max(MIN_EXTENT_BYTES, blockSize) * BUDGET_BYTES_PER_EXTENT_BYTE;
    throw new DeltaError(
      'budget-too-small',
      `a memory budget of ${memoryBudgetBytes} bytes is too small for this pair (needs at least ${needed})`,
      { memoryBudgetBytes, needed },
    );
  }
  return {
    memoryBudgetBytes,
    indexBytes,
    reservedBytes: FIXED_RESERVE_BYTES,
    maxExtentBytes,
    maxWindowBytes: maxExtentBytes * WINDOW_PER_EXTENT,
  };
}

/**
 * Node flags for a process that applies version-2 deltas within the small-device bound (32 MiB above its
 * baseline). The applier's garbage is short-lived (each stream chunk), and V8 lets the young generation grow
 * to 16 MiB semi-spaces before collecting it: measured on a 48 MiB pair, 34-47 MiB above the baseline with
 * the default and 27-28 MiB with 1 MiB semi-spaces. Used with DELTA_BUILDER_ENV.
 */
export const DELTA_APPLIER_EXEC_ARGV: readonly string[] = ['--max-semi-space-size=1'];
