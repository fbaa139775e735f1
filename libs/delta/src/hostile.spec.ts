import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyDelta, type ApplyDeltaOptions } from './apply.js';
import { buildDelta } from './build.js';
import {
  DELTA_HEADER_BYTES,
  DeltaError,
  OP_BSDIFF,
  OP_COPY,
  OP_HEADER_BYTES,
  OP_RAW,
  OP_ZERO,
  decodeHeader,
  decodeOperation,
  encodeHeader,
  encodeOperation,
  operationType,
  type DeltaFailure,
  type DeltaHeader,
  type DeltaOperation,
  type ImageIdentity,
} from './format.js';
import { AttackedSlot, streamOf, zstdOfZeros } from './hostile-kit.js';
import { writeFilesystemLikePair } from './testing.js';

// Every attack is a real delta from a real pair, altered in one way, applied over an existing "slot" file:
// the apply must fail with the named reason and leave the slot exactly as it was, with no temporary files.

const MiB = 1024 * 1024;

interface Part {
  op: DeltaOperation;
  payload: Buffer;
}

function parse(delta: Buffer): { header: DeltaHeader; parts: Part[] } {
  const header = decodeHeader(delta.subarray(0, DELTA_HEADER_BYTES));
  const parts: Part[] = [];
  let at = DELTA_HEADER_BYTES;
  for (let i = 0; i < header.operationCount; i++) {
    const size = OP_HEADER_BYTES[operationType(delta[at]!)];
    const op = decodeOperation(delta.subarray(at, at + size));
    const payloadLength = 'payloadLength' in op ? op.payloadLength : 0;
    parts.push({ op, payload: delta.subarray(at + size, at + size + payloadLength) });
    at += size + payloadLength;
  }
  return { header, parts };
}

function serialize(header: DeltaHeader, parts: Part[]): Buffer {
  return Buffer.concat([
    encodeHeader({ ...header, operationCount: parts.length }),
    ...parts.flatMap((p) => [encodeOperation(p.op), p.payload]),
  ]);
}

/** A copy of the parts with part `i`'s operation changed. */
function alter(parts: Part[], i: number, change: Partial<Record<string, number>>): Part[] {
  return parts.map((p, j) =>
    j === i ? { op: { ...p.op, ...change } as DeltaOperation, payload: p.payload } : p,
  );
}

let root: string;
let sourceFile: string;
let target: ImageIdentity;
let delta: Buffer;
let header: DeltaHeader;
let parts: Part[];
const slot = new AttackedSlot();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'otter-delta-hostile-'));
  const pair = writeFilesystemLikePair({ dir: root, sizeBytes: 4 * MiB, seed: 5, changeRate: 0.25 });
  sourceFile = pair.sourceFile;
  const deltaFile = join(root, 'good.delta');
  const built = await buildDelta({
    sourceFile,
    targetFile: pair.targetFile,
    outFile: deltaFile,
    memoryBudgetBytes: 64 * MiB,
  });
  target = built.target;
  delta = readFileSync(deltaFile);
  ({ header, parts } = parse(delta));
  // The attacks below need every kind of operation to alter.
  for (const type of [OP_COPY, OP_ZERO, OP_BSDIFF, OP_RAW])
    expect(parts.some((p) => p.op.type === type)).toBe(true);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeEach(() => slot.reset(root));

function expectRefused(
  bytes: Buffer,
  reason: DeltaFailure,
  overrides: Partial<ApplyDeltaOptions> = {},
): Promise<DeltaError> {
  return slot.expectRefused(
    { sourceFile, delta: streamOf(bytes), expectedTarget: target, ...overrides },
    reason,
  );
}

function indexOf(type: number): number {
  return parts.findIndex((p) => p.op.type === type);
}

describe('applyDelta refuses hostile deltas and leaves the slot untouched', () => {
  it('a zstd bomb: a RAW payload expanding to 1 GiB for a small declared extent fails without allocating it', async () => {
    const i = indexOf(OP_RAW);
    const declared = parts[i]!.op.length;
    const rssBefore = process.resourceUsage().maxRSS;
    // A frame whose window fits the declared extent passes the window cap: the output count stops it.
    const bomb = await zstdOfZeros(1024 * MiB, Math.max(10, Math.floor(Math.log2(declared))));
    // A frame asking for a window far beyond its declared extent is refused by the decoder's window cap.
    const wideBomb = await zstdOfZeros(1024 * MiB);
    for (const [payload, reason] of [
      [bomb, 'zstd-overflow'],
      [wideBomb, 'zstd-invalid'],
    ] as const) {
      expect(payload.length).toBeLessThan(2 * MiB);
      const bombed = parts.map((p, j) =>
        j === i ? { op: { ...p.op, payloadLength: payload.length } as DeltaOperation, payload } : p,
      );
      const maxOperationBytes = Math.max(header.maxOperationBytes, payload.length);
      const error = await expectRefused(serialize({ ...header, maxOperationBytes }, bombed), reason);
      if (reason === 'zstd-invalid') expect(error.message).toMatch(/memory|window/i);
    }
    // maxRSS is in KiB: the process never came near holding an expansion.
    expect(process.resourceUsage().maxRSS - rssBefore).toBeLessThan(64 * 1024);
  });

  it('applies the unaltered delta over the slot (the baseline the attacks start from)', async () => {
    expect(
      await applyDelta({ sourceFile, delta: streamOf(delta), outFile: slot.path, expectedTarget: target }),
    ).toEqual(target);
    expect(readdirSync(slot.dir)).toEqual(['slot.img']);
  });

  it('a truncated or empty header, or a wrong magic', async () => {
    await expectRefused(delta.subarray(0, 60), 'truncated');
    await expectRefused(Buffer.alloc(0), 'truncated');
    const wrong = Buffer.from(delta);
    wrong.write('NOTOTTER', 0, 'latin1');
    await expectRefused(wrong, 'bad-magic');
  });

  it('a payload cut short, and operations missing at the end', async () => {
    const i = indexOf(OP_BSDIFF);
    const cutAt = serialize(header, parts.slice(0, i)).length + OP_HEADER_BYTES[OP_BSDIFF] + 40;
    await expectRefused(serialize(header, parts).subarray(0, cutAt), 'truncated');
    const j = indexOf(OP_RAW);
    const cutRaw = serialize(header, parts.slice(0, j)).length + OP_HEADER_BYTES[OP_RAW] + 3;
    await expectRefused(serialize(header, parts).subarray(0, cutRaw), 'truncated');
    const fewer = serialize(header, parts.slice(0, -1));
    await expectRefused(fewer, 'incomplete');
    // The header still promises all operations: the stream just ends.
    await expectRefused(
      Buffer.concat([encodeHeader(header), fewer.subarray(DELTA_HEADER_BYTES)]),
      'truncated',
    );
  });

  it('reordered operations (the first misplaced one leaves a gap)', async () => {
    const swapped = [...parts];
    [swapped[1], swapped[2]] = [swapped[2]!, swapped[1]!];
    await expectRefused(serialize(header, swapped), 'gap');
  });

  it('an operation going back before the previous one, and one overlapping it', async () => {
    await expectRefused(
      serialize(header, [parts[0]!, parts[1]!, parts[0]!, ...parts.slice(3)]),
      'out-of-order',
    );
    const i = parts.findIndex((_, j) => j > 0 && parts[j - 1]!.op.length > 4096);
    await expectRefused(
      serialize(header, alter(parts, i, { targetOffset: parts[i]!.op.targetOffset - 4096 })),
      'overlap',
    );
  });

  it('a gap between operations', async () => {
    await expectRefused(
      serialize(header, alter(parts, 1, { targetOffset: parts[1]!.op.targetOffset + 4096 })),
      'gap',
    );
  });

  it('an operation running past the end of the target', async () => {
    const extra: Part = {
      op: { type: OP_ZERO, targetOffset: target.length, length: 4096 },
      payload: Buffer.alloc(0),
    };
    await expectRefused(serialize(header, [...parts, extra]), 'overrun');
    const last = parts.length - 1;
    await expectRefused(
      serialize(header, alter(parts, last, { length: parts[last]!.op.length + 1 })),
      'overrun',
    );
  });

  it('source ranges outside the source image (COPY and BSDIFF)', async () => {
    const c = indexOf(OP_COPY);
    await expectRefused(
      serialize(header, alter(parts, c, { srcOffset: header.source.length - 100 })),
      'source-range',
    );
    const b = indexOf(OP_BSDIFF);
    await expectRefused(
      serialize(header, alter(parts, b, { srcOffset: header.source.length })),
      'source-range',
    );
  });

  it('payloads and extents over the limits, and 64-bit fields past 2^53', async () => {
    await expectRefused(delta, 'too-large', { maxOperationBytes: header.maxOperationBytes - 1 });
    const r = indexOf(OP_RAW);
    await expectRefused(
      serialize(header, alter(parts, r, { payloadLength: header.maxOperationBytes + 1 })),
      'too-large',
    );
    const huge = serialize(header, parts);
    const at = serialize(header, parts.slice(0, 1)).length;
    huge.writeBigUInt64BE(1n << 60n, at + 16);
    await expectRefused(huge, 'bad-operation');
    await expectRefused(delta, 'too-large', { maxOutputBytes: target.length - 1 });
  });

  it('an unknown operation type or reserved bytes set', async () => {
    const bad = serialize(header, parts);
    bad[DELTA_HEADER_BYTES] = 9;
    await expectRefused(bad, 'bad-operation');
    const reserved = serialize(header, parts);
    reserved[DELTA_HEADER_BYTES + 3] = 1;
    await expectRefused(reserved, 'bad-operation');
  });

  it('a bsdiff payload that would produce the wrong length, or that bspatch cannot read', async () => {
    const b = indexOf(OP_BSDIFF);
    const payload = Buffer.from(parts[b]!.payload);
    payload.writeBigUInt64LE(BigInt(parts[b]!.op.length + 1), 24);
    const wrongLength = parts.map((p, j) => (j === b ? { op: p.op, payload } : p));
    await expectRefused(serialize(header, wrongLength), 'bsdiff-length');

    const corrupt = Buffer.from(parts[b]!.payload);
    for (let k = 40; k < corrupt.length; k += 7) corrupt[k] = corrupt[k]! ^ 0xff;
    const corrupted = parts.map((p, j) => (j === b ? { op: p.op, payload: corrupt } : p));
    await expectRefused(serialize(header, corrupted), 'bsdiff-failed');
  });

  it('a bspatch that runs past its time limit is killed and refused', async () => {
    await expectRefused(delta, 'bsdiff-timeout', { bspatchTimeoutMs: 1 });
  });

  it('a zstd payload that is not zstd, or expands to fewer bytes than declared', async () => {
    const r = indexOf(OP_RAW);
    const garbage = parts.map((p, j) =>
      j === r ? { op: p.op, payload: Buffer.alloc(p.payload.length, 0x42) } : p,
    );
    await expectRefused(serialize(header, garbage), 'zstd-invalid');
    // A valid frame holding fewer bytes than the operation declares.
    const fewer = zstdCompressSync(Buffer.alloc(parts[r]!.op.length - 4096));
    const short = parts.map((p, j) =>
      j === r ? { op: { ...p.op, payloadLength: fewer.length } as DeltaOperation, payload: fewer } : p,
    );
    const error = await expectRefused(serialize(header, short), 'zstd-invalid');
    expect(error.code).toBe('DELTA_MALFORMED');
  });

  it('the wrong source image (a slot that is not the delta source), before anything is written', async () => {
    const other = join(root, 'other-source.img');
    const bytes = readFileSync(sourceFile);
    bytes[12345] = bytes[12345]! ^ 1;
    writeFileSync(other, bytes);
    const error = await expectRefused(delta, 'source-mismatch', { sourceFile: other });
    expect(error.code).toBe('DELTA_SOURCE_MISMATCH');
    writeFileSync(other, bytes.subarray(0, bytes.length - 4096));
    await expectRefused(delta, 'source-mismatch', { sourceFile: other });
  });

  it('a header whose target is not the expected target', async () => {
    await expectRefused(delta, 'target-mismatch', {
      expectedTarget: { ...target, length: target.length + 1 },
    });
    await expectRefused(
      serialize({ ...header, target: { ...header.target, length: header.target.length - 1 } }, parts),
      'target-mismatch',
    );
    await expectRefused(delta, 'target-mismatch', { expectedTarget: { ...target, sha256: '0'.repeat(64) } });
  });

  it('bytes after the last operation', async () => {
    await expectRefused(Buffer.concat([delta, Buffer.from([0])]), 'trailing-data');
  });

  it('well-formed operations that produce another image (only the result hash can tell)', async () => {
    const c = parts.findIndex((p) => p.op.type === OP_COPY && p.op.srcOffset >= 4096);
    const error = await expectRefused(
      serialize(
        header,
        alter(parts, c, { srcOffset: (parts[c]!.op as { srcOffset: number }).srcOffset - 4096 }),
      ),
      'result-mismatch',
    );
    expect(error.code).toBe('DELTA_TARGET_MISMATCH');
  });
});
