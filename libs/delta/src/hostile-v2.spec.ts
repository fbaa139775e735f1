import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyDelta, type ApplyDeltaOptions } from './apply.js';
import { buildDeltaV2 } from './build-v2.js';
import { DELTA_HEADER_BYTES, type DeltaError, type DeltaFailure, type ImageIdentity } from './format.js';
import {
  ControlReader,
  ControlWriter,
  SEGMENT_HEADER_BYTES,
  decodeHeaderV2,
  decodeSegmentHeader,
  encodeHeaderV2,
  encodeSegmentHeader,
  type DeltaHeaderV2,
  type SegmentHeader,
} from './format-v2.js';
import { AttackedSlot, streamOf, zstdOfZeros } from './hostile-kit.js';
import { randomBytesFrom, seededRandom, textFrom } from './testing.js';

// The version-2 attacks: a real v2 delta altered in one way (a stream cut short, a cover pointing outside the
// source or the segment, a length that lies, a decompression bomb), applied over an existing slot. Each must
// be refused with the named reason, leaving the slot as it was.

const KiB = 1024;
const MiB = 1024 * KiB;

interface Cover {
  gap: number;
  oldDelta: number;
  length: number;
}

interface Segment {
  head: SegmentHeader;
  control: Buffer;
  diff: Buffer;
  literal: Buffer;
}

function parse(delta: Buffer): { header: DeltaHeaderV2; segments: Segment[] } {
  const header = decodeHeaderV2(delta.subarray(0, DELTA_HEADER_BYTES));
  const segments: Segment[] = [];
  let at = DELTA_HEADER_BYTES;
  for (let s = 0; s < header.segmentCount; s++) {
    const head = decodeSegmentHeader(delta.subarray(at, at + SEGMENT_HEADER_BYTES));
    at += SEGMENT_HEADER_BYTES;
    const take = (n: number): Buffer => delta.subarray(at, (at += n));
    segments.push({
      head,
      control: take(head.controlPayload),
      diff: take(head.diffPayload),
      literal: take(head.literalPayload),
    });
  }
  expect(at).toBe(delta.length);
  return { header, segments };
}

/** Serializes segments; the header's maxPayloadBytes follows them unless `header` sets it explicitly. */
function serialize(header: DeltaHeaderV2, segments: Segment[], fixedMaxPayload = false): Buffer {
  const maxPayloadBytes = fixedMaxPayload
    ? header.maxPayloadBytes
    : Math.max(...segments.map((s) => s.control.length + s.diff.length + s.literal.length));
  return Buffer.concat([
    encodeHeaderV2({ ...header, maxPayloadBytes }),
    ...segments.flatMap((s) => [
      encodeSegmentHeader({
        ...s.head,
        controlPayload: s.control.length,
        diffPayload: s.diff.length,
        literalPayload: s.literal.length,
      }),
      s.control,
      s.diff,
      s.literal,
    ]),
  ]);
}

/** The covers of a segment's control stream (three columns: gaps, source offset deltas, lengths). */
function coversOf(segment: Segment): Cover[] {
  const reader = new ControlReader(zstdDecompressSync(segment.control));
  const n = segment.head.coverCount;
  const gaps = Array.from({ length: n }, () => reader.varint());
  const deltas = Array.from({ length: n }, () => reader.signed());
  return gaps.map((gap, c) => ({ gap, oldDelta: deltas[c]!, length: reader.varint() }));
}

/** The segment with its control stream re-encoded from `covers` (coverCount and controlLength follow). */
function withCovers(segment: Segment, covers: Cover[], coverCount = covers.length): Segment {
  const writer = new ControlWriter();
  for (const c of covers) writer.varint(c.gap);
  for (const c of covers) writer.signed(c.oldDelta);
  for (const c of covers) writer.varint(c.length);
  const raw = Buffer.from(writer.bytes());
  return {
    ...segment,
    head: { ...segment.head, coverCount, controlLength: raw.length },
    control: raw.length ? zstdCompressSync(raw) : Buffer.alloc(0),
  };
}

function replace(segments: Segment[], i: number, segment: Segment): Segment[] {
  return segments.map((s, j) => (j === i ? segment : s));
}

let root: string;
let sourceFile: string;
let target: ImageIdentity;
let delta: Buffer;
let header: DeltaHeaderV2;
let segments: Segment[];
/** A segment with covers, differences and literals: the one most attacks alter. */
let k: number;
const slot = new AttackedSlot();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'otter-delta-hostile-v2-'));
  const random = seededRandom(21);
  const source = Buffer.concat([textFrom(random, 256 * KiB), randomBytesFrom(random, 256 * KiB)]);
  const target_ = Buffer.concat([
    source.subarray(0, 100_001),
    randomBytesFrom(random, 3_001),
    source.subarray(100_001, 300_000),
    Buffer.from(source.subarray(300_000, 400_000)).map((b, i) => (i % 501 === 0 ? b ^ 0x11 : b)),
    source.subarray(400_000),
  ]);
  sourceFile = join(root, 'old');
  writeFileSync(sourceFile, source);
  writeFileSync(join(root, 'new'), target_);
  const built = await buildDeltaV2({
    sourceFile,
    targetFile: join(root, 'new'),
    outFile: join(root, 'good.delta'),
    segmentBytes: 64 * KiB,
  });
  target = built.target;
  delta = readFileSync(join(root, 'good.delta'));
  ({ header, segments } = parse(delta));
  k = segments.findIndex((s) => s.head.coverCount > 0 && s.diff.length > 0 && s.literal.length > 0);
  expect(k).toBeGreaterThanOrEqual(0);
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

describe('applyDelta refuses hostile version-2 deltas and leaves the slot untouched', () => {
  it('applies the unaltered delta, and its re-serialization, over the slot (the baseline)', async () => {
    expect(serialize(header, segments).equals(delta)).toBe(true);
    expect(
      await applyDelta({ sourceFile, delta: streamOf(delta), outFile: slot.path, expectedTarget: target }),
    ).toEqual(target);
  });

  it('streams cut short: in the header, a segment header, a payload, and a missing last segment', async () => {
    await expectRefused(delta.subarray(0, 60), 'truncated');
    await expectRefused(delta.subarray(0, DELTA_HEADER_BYTES + 10), 'truncated');
    const before = serialize(header, segments.slice(0, k)).length;
    const inDiff = before + SEGMENT_HEADER_BYTES + segments[k]!.control.length + 2;
    await expectRefused(delta.subarray(0, inDiff), 'truncated');
    await expectRefused(serialize(header, segments.slice(0, -1)), 'truncated');
    await expectRefused(Buffer.concat([delta, Buffer.from([0])]), 'trailing-data');
  });

  it('a header that lies: segment count, segment size, flags, version, payload bound', async () => {
    const count = Buffer.from(delta);
    count.writeBigUInt64BE(BigInt(header.segmentCount + 1), 96);
    await expectRefused(count, 'bad-header');
    const size = Buffer.from(delta);
    size.writeUInt32BE(100_000, 12);
    await expectRefused(size, 'bad-header');
    const flags = Buffer.from(delta);
    flags.writeUInt16BE(1, 10);
    await expectRefused(flags, 'bad-header');
    const version = Buffer.from(delta);
    version.writeUInt16BE(3, 8);
    await expectRefused(version, 'unsupported-version');
    await expectRefused(delta, 'too-large', { maxOperationBytes: header.maxPayloadBytes - 1 });
    await expectRefused(delta, 'too-large', { maxOperationBytes: header.segmentBytes - 1 });
    // A segment whose payloads exceed what the header promised.
    await expectRefused(
      serialize({ ...header, maxPayloadBytes: header.maxPayloadBytes - 1 }, segments, true),
      'too-large',
    );
    const reserved = serialize(header, segments);
    reserved.writeUInt32BE(1, DELTA_HEADER_BYTES + 20);
    await expectRefused(reserved, 'bad-operation');
  });

  it('covers reading outside the source, running past the segment, or empty', async () => {
    const covers = coversOf(segments[k]!);
    const last = covers.length - 1;
    const attack = (change: Partial<Cover>, at = last): Buffer =>
      serialize(
        header,
        replace(
          segments,
          k,
          withCovers(
            segments[k]!,
            covers.map((c, j) => (j === at ? { ...c, ...change } : c)),
          ),
        ),
      );
    await expectRefused(attack({ oldDelta: header.source.length }), 'source-range');
    await expectRefused(attack({ oldDelta: -(k + 1) * header.segmentBytes - 1 }, 0), 'source-range');
    await expectRefused(attack({ gap: header.segmentBytes }), 'overrun');
    await expectRefused(attack({ length: header.segmentBytes }), 'overrun');
    await expectRefused(attack({ length: 0 }), 'bad-operation');
  });

  it('cover counts and control lengths that lie', async () => {
    const segment = segments[k]!;
    const covers = coversOf(segment);
    // More covers declared than the control stream holds; fewer (extra bytes left over); more than bytes.
    await expectRefused(
      serialize(header, replace(segments, k, withCovers(segment, covers, covers.length + 1))),
      'bad-operation',
    );
    await expectRefused(
      serialize(header, replace(segments, k, withCovers(segment, covers, covers.length - 1))),
      'bad-operation',
    );
    const many = { ...segment, head: { ...segment.head, coverCount: header.segmentBytes + 1 } };
    await expectRefused(serialize(header, replace(segments, k, many)), 'bad-operation');
    // The control stream's declared length: shorter than it expands to, or longer.
    const shorter = { ...segment, head: { ...segment.head, controlLength: segment.head.controlLength - 1 } };
    await expectRefused(serialize(header, replace(segments, k, shorter)), 'zstd-overflow');
    const longer = { ...segment, head: { ...segment.head, controlLength: segment.head.controlLength + 1 } };
    await expectRefused(serialize(header, replace(segments, k, longer)), 'zstd-invalid');
    // A control stream declared longer than its segment (plus 64 bytes) never sizes a buffer.
    const controlLength = header.segmentBytes + 65;
    const huge = {
      ...segment,
      head: { ...segment.head, coverCount: Math.ceil(controlLength / 24), controlLength },
    };
    await expectRefused(serialize(header, replace(segments, k, huge)), 'too-large');
    // An overlong varint (9 continuation bytes) in an otherwise valid control stream.
    const overlong = Buffer.alloc(3 * 8, 0x80);
    const bad = {
      ...segment,
      head: { ...segment.head, coverCount: 1, controlLength: overlong.length },
      control: zstdCompressSync(overlong),
    };
    await expectRefused(serialize(header, replace(segments, k, bad)), 'bad-operation');
  });

  it('payload lengths that lie shift the streams: each is refused, never misread', async () => {
    const bytes = serialize(header, segments);
    const at = serialize(header, segments.slice(0, k)).length;
    const diffLonger = Buffer.from(bytes);
    diffLonger.writeUInt32BE(segments[k]!.head.diffPayload + 1, at + 12);
    diffLonger.writeUInt32BE(segments[k]!.head.literalPayload - 1, at + 16);
    await expectRefused(diffLonger, 'zstd-invalid');
    const garbage = { ...segments[k]!, diff: Buffer.alloc(segments[k]!.diff.length, 0x42) };
    await expectRefused(serialize(header, replace(segments, k, garbage)), 'zstd-invalid');
    const empty = { ...segments[k]!, literal: Buffer.alloc(0) };
    await expectRefused(serialize(header, replace(segments, k, empty)), 'zstd-invalid');
  });

  it('decompression bombs (256 MiB) in each stream stop after their declared length, without allocating it', async () => {
    const segment = segments[k]!;
    const rssBefore = process.resourceUsage().maxRSS;
    // Window 1 KiB, the decoder's smallest cap, so that the frame passes the window check on every stream
    // (the control stream here is a few dozen bytes): only the output count can stop it.
    const bomb = await zstdOfZeros(256 * MiB, 10);
    expect(bomb.length).toBeLessThan(2 * MiB);
    for (const stream of ['control', 'diff', 'literal'] as const) {
      await expectRefused(
        serialize(header, replace(segments, k, { ...segment, [stream]: bomb })),
        'zstd-overflow',
      );
    }
    // A frame asking for a window far beyond the stream's length is refused by the decoder's window cap.
    const wide = await zstdOfZeros(64 * MiB);
    await expectRefused(serialize(header, replace(segments, k, { ...segment, diff: wide })), 'zstd-invalid');
    // maxRSS is in KiB: the process never came near holding an expansion.
    expect(process.resourceUsage().maxRSS - rssBefore).toBeLessThan(64 * 1024);
  });

  it('well-formed streams that produce another image (only the result hash can tell)', async () => {
    const segment = segments[k]!;
    const covers = coversOf(segment);
    const moved = covers.map((c, j) => (j === 0 ? { ...c, oldDelta: c.oldDelta + 1 } : c));
    const error = await expectRefused(
      serialize(header, replace(segments, k, withCovers(segment, moved))),
      'result-mismatch',
    );
    expect(error.code).toBe('DELTA_TARGET_MISMATCH');
  });

  it('the wrong source image, before anything is written', async () => {
    const other = join(root, 'other-source');
    const bytes = readFileSync(sourceFile);
    bytes[4321] = bytes[4321]! ^ 1;
    writeFileSync(other, bytes);
    await expectRefused(delta, 'source-mismatch', { sourceFile: other });
  });
});
