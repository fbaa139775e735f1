import {
  DELTA_HEADER_BYTES,
  DELTA_MAGIC,
  DeltaError,
  assertSha256Hex,
  readU64 as readU64Field,
  writeU64,
  type ImageIdentity,
} from './format.js';

/** A v2 header's u64 fields: a value past 53 bits is a header that lies. */
function readU64(buf: Buffer, offset: number, field: string): number {
  return readU64Field(buf, offset, field, 'bad-header');
}

/**
 * Otter delta format, version 2 (docs/delta-format.md, "Version 2", is the byte-by-byte reference; keep the
 * two in step). The target is cut into segments of `segmentBytes` (the last one shorter); each segment is a
 * list of covers (a target range made from a source range plus byte-wise differences) and literal bytes
 * between them, stored as three separately zstd-compressed streams: control, differences, literals.
 */
export const DELTA_FORMAT_VERSION_2 = 2;

/** Segment sizes a v2 header may declare: what bounds the applier's buffers (about 3 x segmentBytes). */
export const MIN_SEGMENT_BYTES = 64 * 1024;
export const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;

export const SEGMENT_HEADER_BYTES = 24;

/** LEB128 of a value below 2^53 takes at most 8 bytes; a control entry is three of them. */
const MAX_VARINT_BYTES = 8;
export const MAX_CONTROL_BYTES_PER_COVER = 3 * MAX_VARINT_BYTES;
/**
 * A control stream may be at most its segment's length plus this. The builder's covers are at least 24 bytes
 * (but a last one reaching the segment's end) and cost at most 16 control bytes each, so an honest control
 * stream is shorter than its segment; the bound keeps a hostile one from sizing the applier's buffers.
 */
export const CONTROL_SLACK_BYTES = 64;

export interface DeltaHeaderV2 {
  version: typeof DELTA_FORMAT_VERSION_2;
  segmentBytes: number;
  source: ImageIdentity;
  target: ImageIdentity;
  segmentCount: number;
  /** The largest sum of one segment's three compressed payloads: what an applier buffers compressed. */
  maxPayloadBytes: number;
}

export interface SegmentHeader {
  coverCount: number;
  /** Decompressed length of the control stream. */
  controlLength: number;
  controlPayload: number;
  diffPayload: number;
  literalPayload: number;
}

/** The format version of a header, after checking its magic (each version then has its own decoder). */
export function headerVersion(buf: Buffer): number {
  if (buf.length !== DELTA_HEADER_BYTES) throw new DeltaError('truncated', 'delta header is truncated');
  if (!buf.subarray(0, 8).equals(DELTA_MAGIC)) throw new DeltaError('bad-magic', 'not an Otter delta');
  return buf.readUInt16BE(8);
}

export function segmentCountFor(targetLength: number, segmentBytes: number): number {
  return Math.ceil(targetLength / segmentBytes);
}

function isSegmentSize(n: number): boolean {
  return n >= MIN_SEGMENT_BYTES && n <= MAX_SEGMENT_BYTES && (n & (n - 1)) === 0;
}

export function encodeHeaderV2(header: DeltaHeaderV2): Buffer {
  const buf = Buffer.alloc(DELTA_HEADER_BYTES);
  DELTA_MAGIC.copy(buf, 0);
  buf.writeUInt16BE(DELTA_FORMAT_VERSION_2, 8);
  buf.writeUInt32BE(header.segmentBytes, 12);
  writeU64(buf, header.source.length, 16);
  buf.write(assertSha256Hex(header.source.sha256, 'source sha256'), 24, 32, 'hex');
  writeU64(buf, header.target.length, 56);
  buf.write(assertSha256Hex(header.target.sha256, 'target sha256'), 64, 32, 'hex');
  writeU64(buf, header.segmentCount, 96);
  writeU64(buf, header.maxPayloadBytes, 104);
  return buf;
}

/** Parses a version-2 header; checks what the header alone can tell (segment size and count, flags). */
export function decodeHeaderV2(buf: Buffer): DeltaHeaderV2 {
  const version = headerVersion(buf);
  if (version !== DELTA_FORMAT_VERSION_2) {
    throw new DeltaError('unsupported-version', `not a version-2 delta (version ${version})`, { version });
  }
  if (buf.readUInt16BE(10) !== 0) throw new DeltaError('bad-header', 'reserved header flags are set');
  const segmentBytes = buf.readUInt32BE(12);
  if (!isSegmentSize(segmentBytes)) {
    throw new DeltaError(
      'bad-header',
      `segment size ${segmentBytes} is not a power of two in [64 KiB, 64 MiB]`,
    );
  }
  const header: DeltaHeaderV2 = {
    version,
    segmentBytes,
    source: { length: readU64(buf, 16, 'source.length'), sha256: buf.toString('hex', 24, 56) },
    target: { length: readU64(buf, 56, 'target.length'), sha256: buf.toString('hex', 64, 96) },
    segmentCount: readU64(buf, 96, 'segmentCount'),
    maxPayloadBytes: readU64(buf, 104, 'maxPayloadBytes'),
  };
  if (header.segmentCount !== segmentCountFor(header.target.length, segmentBytes)) {
    throw new DeltaError('bad-header', `segment count ${header.segmentCount} does not cover the target`);
  }
  return header;
}

export function encodeSegmentHeader(segment: SegmentHeader): Buffer {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  buf.writeUInt32BE(segment.coverCount, 0);
  buf.writeUInt32BE(segment.controlLength, 4);
  buf.writeUInt32BE(segment.controlPayload, 8);
  buf.writeUInt32BE(segment.diffPayload, 12);
  buf.writeUInt32BE(segment.literalPayload, 16);
  return buf;
}

export function decodeSegmentHeader(buf: Buffer): SegmentHeader {
  if (buf.length !== SEGMENT_HEADER_BYTES) throw new DeltaError('truncated', 'segment header is truncated');
  if (buf.readUInt32BE(20) !== 0) throw new DeltaError('bad-operation', 'reserved segment bytes are set');
  return {
    coverCount: buf.readUInt32BE(0),
    controlLength: buf.readUInt32BE(4),
    controlPayload: buf.readUInt32BE(8),
    diffPayload: buf.readUInt32BE(12),
    literalPayload: buf.readUInt32BE(16),
  };
}

/** Growable byte buffer for the control stream (LEB128 varints). */
export class ControlWriter {
  private buf = Buffer.allocUnsafe(4096);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + extra));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  /** Unsigned LEB128 of a safe non-negative integer. */
  varint(value: number): void {
    this.ensure(MAX_VARINT_BYTES);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
  }

  /** Zigzag, so small negative deltas stay short: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... */
  signed(value: number): void {
    this.varint(value < 0 ? -2 * value - 1 : 2 * value);
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

/** Reads the control stream; anything malformed (overlong, past 2^53, cut short) is a 'bad-operation'. */
export class ControlReader {
  private at = 0;

  constructor(private readonly buf: Buffer) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.at >= this.buf.length)
        throw new DeltaError('bad-operation', 'control stream ends inside a number');
      const byte = this.buf[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw new DeltaError('bad-operation', 'control number past 2^53');
        return value;
      }
      scale *= 0x80;
    }
    throw new DeltaError('bad-operation', 'control number longer than 8 bytes');
  }

  signed(): number {
    const z = this.varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  get atEnd(): boolean {
    return this.at === this.buf.length;
  }

  /** Bytes read so far. */
  get position(): number {
    return this.at;
  }
}
