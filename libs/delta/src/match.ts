/**
 * The v2 matcher: finds where target bytes come from in the source at any byte offset, not on block
 * boundaries. The source is sampled every `step` bytes into a hash table of `ANCHOR_BYTES`-byte anchors;
 * every target position is hashed with a rolling hash and looked up, so any exact match of at least
 * ANCHOR_BYTES + step - 1 bytes is found wherever it lies. A hit is extended byte by byte forwards and
 * backwards (exact), then further while at least half the bytes still agree (approximate: the differences go
 * to the diff stream, mostly zeros, where an edited pointer or a relocated offset costs a few bytes). The
 * displacement of the previous cover is tried first at every position, which keeps a run of small edits in one
 * cover. Everything lives in typed arrays; nothing is allocated per position or per match.
 */

// The constants below were picked on the quick bench corpus (esbuild 0.25.4 -> 0.25.5 and the 16 MB rootfs
// tar, zstd level 19): minimum 12 / slack 24 / 4 candidates gave 166.7 KB and 38.8 KB, minimum 24 / slack 8 /
// 16 candidates with the jump cost 165.7 KB and 27.9 KB; shorter minimums add covers whose control entries
// cost more than the literals they save.

/** Bytes hashed per anchor. Shorter finds shorter copies but makes more false and repetitive hits. */
export const ANCHOR_BYTES = 12;
/** A cover whose exact core is shorter than this is not worth its control entry. */
export const MIN_COVER_BYTES = 24;
/** Approximate extension stops once the score (matches - mismatches) falls this far below its best. */
const EXTEND_SLACK = 8;
/** At most this many source positions per distinct anchor hash (zero and fill runs would flood it). */
const MAX_CANDIDATES = 16;

const HASH_MUL = 0x01000193;
/** HASH_MUL^(ANCHOR_BYTES - 1) mod 2^32: what the byte leaving the rolling window was multiplied by. */
const HASH_OUT = (() => {
  let p = 1;
  for (let i = 0; i < ANCHOR_BYTES - 1; i++) p = Math.imul(p, HASH_MUL);
  return p;
})();

/** Match bytes one control byte of a jump is worth when choosing among candidates (see above). */
const JUMP_WEIGHT = 2;

/** Bytes of the zigzag LEB128 varint of `delta` (what a cover's source offset costs in the control). */
function varintBytes(delta: number): number {
  let z = delta < 0 ? -2 * delta - 1 : 2 * delta;
  let n = 1;
  while (z >= 0x80) {
    z = Math.floor(z / 0x80);
    n++;
  }
  return n;
}

function hashAt(bytes: Uint8Array, at: number): number {
  let h = 0;
  for (let k = 0; k < ANCHOR_BYTES; k++) h = (Math.imul(h, HASH_MUL) + bytes[at + k]!) | 0;
  return h >>> 0;
}

/** Spreads the polynomial hash over the table (its low bits alone are poor for short repetitive data). */
function slotOf(h: number, mask: number): number {
  return (Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0) & mask;
}

function tableSlotsFor(entries: number): number {
  let slots = 1024;
  while (slots < entries * 2) slots *= 2;
  return slots;
}

/** Sampled anchor index of the source: two Uint32Arrays (hash, sample number + 1), open addressing. */
export class SourceIndex {
  readonly keys: Uint32Array;
  readonly samples: Uint32Array;
  readonly mask: number;

  /** Bytes the index takes for a source of this length sampled every `step` bytes. */
  static bytesFor(sourceLength: number, step: number): number {
    return tableSlotsFor(Math.ceil(sourceLength / step)) * 8;
  }

  constructor(
    readonly source: Uint8Array,
    readonly step: number,
  ) {
    if (!Number.isInteger(step) || step < 1) throw new RangeError('step must be a positive integer');
    if (Math.ceil(source.length / step) >= 0xffffffff) throw new RangeError('source too long for its step');
    const slots = tableSlotsFor(Math.ceil(source.length / step));
    this.keys = new Uint32Array(slots);
    this.samples = new Uint32Array(slots);
    this.mask = slots - 1;
    for (let p = 0, n = 1; p + ANCHOR_BYTES <= source.length; p += step, n++)
      this.insert(hashAt(source, p), n);
  }

  private insert(h: number, sample: number): void {
    let slot = slotOf(h, this.mask);
    let same = 0;
    while (this.samples[slot] !== 0) {
      if (this.keys[slot] === h && ++same >= MAX_CANDIDATES) return;
      slot = (slot + 1) & this.mask;
    }
    this.keys[slot] = h;
    this.samples[slot] = sample;
  }
}

/** Covers found in one target segment, as parallel growable typed arrays. */
export class Covers {
  newStart = new Uint32Array(1024);
  oldStart = new Float64Array(1024);
  length = new Uint32Array(1024);
  count = 0;

  push(newStart: number, oldStart: number, length: number): void {
    if (this.count === this.newStart.length) {
      const grow = <T extends Uint32Array | Float64Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.newStart = grow(this.newStart, (n) => new Uint32Array(n));
      this.oldStart = grow(this.oldStart, (n) => new Float64Array(n));
      this.length = grow(this.length, (n) => new Uint32Array(n));
    }
    this.newStart[this.count] = newStart;
    this.oldStart[this.count] = oldStart;
    this.length[this.count] = length;
    this.count++;
  }

  reset(): void {
    this.count = 0;
  }
}

/**
 * Matches target segments against one source, in target order. Keeps the last cover's displacement across
 * segments, so content that stays in place (or moved as a whole) is found without a hash lookup.
 */
export class Matcher {
  private displacement = 0;
  private readonly source: Uint8Array;
  // The best candidate at the current position (fields, not a closure or object per position).
  private bestLength = 0;
  private bestOld = 0;
  private bestBack = 0;
  private bestScore = 0;
  private segmentStart = 0;

  constructor(private readonly index: SourceIndex) {
    this.source = index.source;
  }

  /** Appends to `out` the covers of `segment`, whose first byte is target byte `segmentStart`. */
  match(segment: Uint8Array, segmentStart: number, out: Covers): void {
    const n = segment.length;
    const { keys, samples, mask, step } = this.index;
    this.segmentStart = segmentStart;
    let literalStart = 0;
    let i = 0;
    let h = 0;
    let hashedAt = -2;
    while (i < n) {
      this.bestLength = 0;
      this.bestScore = -Infinity;
      this.consider(segment, i, segmentStart + i + this.displacement, literalStart);
      if (i + ANCHOR_BYTES <= n) {
        h = hashedAt === i - 1 ? this.roll(h, segment, i) : hashAt(segment, i);
        hashedAt = i;
        for (let slot = slotOf(h, mask); samples[slot] !== 0; slot = (slot + 1) & mask) {
          if (keys[slot] === h) this.consider(segment, i, (samples[slot]! - 1) * step, literalStart);
        }
      }
      // A short match is kept only when it runs to the segment's end (the tail of an unchanged image).
      const toEnd = i + this.bestLength - this.bestBack === n;
      if (this.bestLength < MIN_COVER_BYTES && !(toEnd && this.bestLength > 0)) {
        i++;
        continue;
      }
      const delta = this.bestOld - i; // old position of segment byte k is k + delta
      let start = i - this.bestBack;
      let end = start + this.bestLength;
      end = this.extendForward(segment, end, delta, n);
      start = this.extendBackward(segment, start, delta, literalStart);
      out.push(start, start + delta, end - start);
      this.displacement = start + delta - (segmentStart + start);
      literalStart = end;
      i = end;
    }
  }

  /**
   * Exact length of the match of segment[i..] with old[j..], forwards to the segment's end and backwards to
   * `floor`; kept in bestLength / bestOld / bestBack when it beats the best candidate so far at i.
   */
  private consider(segment: Uint8Array, i: number, j: number, floor: number): void {
    const old = this.source;
    if (j < 0 || j >= old.length || segment[i] !== old[j]) return;
    let f = 1;
    const maxF = Math.min(segment.length - i, old.length - j);
    while (f < maxF && segment[i + f] === old[j + f]) f++;
    let b = 0;
    const maxB = Math.min(i - floor, j);
    while (b < maxB && segment[i - b - 1] === old[j - b - 1]) b++;
    // A jump away from the previous cover's displacement costs control bytes (its varint, which compresses
    // poorly): among candidates, the longest match net of that cost wins, so a common snippet elsewhere in
    // the source does not beat the same text where the neighbouring content came from.
    const score = f + b - JUMP_WEIGHT * varintBytes(j - (this.segmentStart + i + this.displacement));
    if (score > this.bestScore) {
      this.bestScore = score;
      this.bestLength = f + b;
      this.bestOld = j;
      this.bestBack = b;
    }
  }

  private roll(h: number, segment: Uint8Array, i: number): number {
    const leaving = Math.imul(segment[i - 1]!, HASH_OUT);
    return (Math.imul((h - leaving) | 0, HASH_MUL) + segment[i + ANCHOR_BYTES - 1]!) >>> 0;
  }

  /** Extends past `end` while matches keep outnumbering mismatches; returns the best end seen. */
  private extendForward(segment: Uint8Array, end: number, delta: number, n: number): number {
    const old = this.source;
    const limit = Math.min(n, old.length - delta);
    let score = 0;
    let best = 0;
    let bestEnd = end;
    for (let k = end; k < limit; k++) {
      score += segment[k] === old[k + delta] ? 1 : -1;
      if (score > best) {
        best = score;
        bestEnd = k + 1;
      } else if (score < best - EXTEND_SLACK) break;
    }
    return bestEnd;
  }

  /** The same backwards from `start`, never before `floor` (the previous cover's end) or old byte 0. */
  private extendBackward(segment: Uint8Array, start: number, delta: number, floor: number): number {
    const old = this.source;
    const limit = Math.max(floor, -delta);
    let score = 0;
    let best = 0;
    let bestStart = start;
    for (let k = start - 1; k >= limit; k--) {
      score += segment[k] === old[k + delta] ? 1 : -1;
      if (score > best) {
        best = score;
        bestStart = k;
      } else if (score < best - EXTEND_SLACK) break;
    }
    return bestStart;
  }
}
