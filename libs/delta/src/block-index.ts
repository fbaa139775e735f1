import { hash } from 'node:crypto';

/**
 * The 64-bit fingerprint of a block: the first 8 bytes of its sha256, as two 32-bit halves. A hit is only a
 * candidate; the planner compares the bytes before it trusts one.
 */
export function blockFingerprint(block: Uint8Array): [number, number] {
  const digest = hash('sha256', block, 'buffer');
  return [digest.readUInt32LE(0), digest.readUInt32LE(4)];
}

/**
 * Source block fingerprints in typed arrays (a Map of a million entries would cost ~100 MB; this costs
 * 8 bytes per block plus a 4-byte-per-slot open-addressing table with at most 50% load).
 */
export class BlockIndex {
  private readonly low: Uint32Array;
  private readonly high: Uint32Array;
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(readonly blockCount: number) {
    this.low = new Uint32Array(blockCount);
    this.high = new Uint32Array(blockCount);
    const capacity = BlockIndex.capacityFor(blockCount);
    this.slots = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  static capacityFor(blockCount: number): number {
    let capacity = 16;
    while (capacity < blockCount * 2) capacity *= 2;
    return capacity;
  }

  /** Bytes this index allocates for a source of `blockCount` blocks (what the memory rule reserves). */
  static bytesFor(blockCount: number): number {
    return blockCount * 8 + BlockIndex.capacityFor(blockCount) * 4;
  }

  /** Records block `block`'s fingerprint; identical content keeps its first (lowest) block. */
  add(block: number, low: number, high: number): void {
    this.low[block] = low;
    this.high[block] = high;
    let slot = (low ^ Math.imul(high, 0x9e3779b1)) & this.mask;
    for (;;) {
      const entry = this.slots[slot]!;
      if (entry === 0) {
        this.slots[slot] = block + 1;
        return;
      }
      if (this.low[entry - 1] === low && this.high[entry - 1] === high) return;
      slot = (slot + 1) & this.mask;
    }
  }

  /** The first source block with this fingerprint, or -1. */
  find(low: number, high: number): number {
    let slot = (low ^ Math.imul(high, 0x9e3779b1)) & this.mask;
    for (;;) {
      const entry = this.slots[slot]!;
      if (entry === 0) return -1;
      if (this.low[entry - 1] === low && this.high[entry - 1] === high) return entry - 1;
      slot = (slot + 1) & this.mask;
    }
  }

  /** Whether block `block` was added with this fingerprint (never true for blocks not added). */
  matches(block: number, low: number, high: number): boolean {
    return (
      block >= 0 &&
      block < this.blockCount &&
      this.low[block] === low &&
      this.high[block] === high &&
      (low !== 0 || high !== 0)
    );
  }
}
