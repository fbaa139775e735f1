import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createZstdDecompress } from 'node:zlib';
import { DeltaError } from './format.js';
import {
  CONTROL_SLACK_BYTES,
  ControlReader,
  MAX_CONTROL_BYTES_PER_COVER,
  SEGMENT_HEADER_BYTES,
  decodeSegmentHeader,
  type DeltaHeaderV2,
} from './format-v2.js';
import { IO_CHUNK_BYTES, readFully } from './io.js';
import type { StreamReader } from './stream-reader.js';

/** Refuses a v2 header whose segments or payloads would make the applier buffer more than its limit. */
export function checkHeaderV2(header: DeltaHeaderV2, maxOperationBytes: number): void {
  if (header.segmentBytes > maxOperationBytes || header.maxPayloadBytes > maxOperationBytes) {
    throw new DeltaError('too-large', `the delta needs more than ${maxOperationBytes} bytes per segment`, {
      segmentBytes: header.segmentBytes,
      maxPayloadBytes: header.maxPayloadBytes,
      maxOperationBytes,
    });
  }
}

/**
 * Decompresses one stream into `into[0, length)`, exactly `length` bytes. The decoder's window is capped near
 * `length` and its output counted per 64 KiB chunk, so a bomb stops one chunk after its declared length.
 * Streams are decoded into buffers reused across segments: one-shot decoding allocated fresh multi-MiB
 * buffers per segment that the garbage collector released late (measured 36 MiB above the baseline on a
 * 48 MiB image, against 32 MiB allowed).
 */
async function inflateInto(payload: Buffer, into: Buffer, length: number, what: string): Promise<void> {
  if (length === 0) {
    if (payload.length !== 0) throw new DeltaError('zstd-invalid', `${what} stream is not empty`);
    return;
  }
  if (payload.length === 0) throw new DeltaError('zstd-invalid', `${what} stream is empty`);
  let produced = 0;
  try {
    await pipeline(
      Readable.from([payload]),
      createZstdDecompress({
        chunkSize: 64 * 1024,
        params: { [zlibConstants.ZSTD_d_windowLogMax]: Math.max(10, Math.ceil(Math.log2(length))) },
      }),
      async (chunks: AsyncIterable<Buffer>) => {
        for await (const chunk of chunks) {
          if (produced + chunk.length > length) {
            throw new DeltaError('zstd-overflow', `${what} stream expands past its ${length} bytes`);
          }
          produced += chunk.copy(into, produced);
        }
      },
    );
  } catch (e) {
    if (e instanceof DeltaError) throw e;
    throw new DeltaError('zstd-invalid', `${what} stream is not valid zstd: ${(e as Error).message}`);
  }
  if (produced !== length) {
    throw new DeltaError('zstd-invalid', `${what} stream expands to ${produced} bytes, expected ${length}`);
  }
}

/**
 * Where the control stream's three columns (gaps, source offset deltas, lengths) end, after checking that it
 * holds exactly `count` numbers in each and nothing more. The columns are then read in step, cover by
 * cover, straight from the stream: nothing is allocated per cover, whatever count a hostile segment claims.
 */
function columnBounds(control: Buffer, count: number, segment: number): [number, number] {
  const reader = new ControlReader(control);
  for (let c = 0; c < count; c++) reader.varint();
  const gapsEnd = reader.position;
  for (let c = 0; c < count; c++) reader.signed();
  const deltasEnd = reader.position;
  for (let c = 0; c < count; c++) reader.varint();
  if (!reader.atEnd) {
    throw new DeltaError('bad-operation', `segment ${segment}'s control stream has extra bytes`);
  }
  return [gapsEnd, deltasEnd];
}

function columnReaders(
  control: Buffer,
  [gapsEnd, deltasEnd]: [number, number],
): [ControlReader, ControlReader, ControlReader] {
  return [
    new ControlReader(control.subarray(0, gapsEnd)),
    new ControlReader(control.subarray(gapsEnd, deltasEnd)),
    new ControlReader(control.subarray(deltasEnd)),
  ];
}

/** Source reads for covers through a 1 MiB window: covers are many and mostly ascending in the source. */
class SourceWindow {
  private readonly buf = Buffer.allocUnsafe(IO_CHUNK_BYTES);
  private start = 0;
  private end = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly length: number,
  ) {}

  async copy(into: Buffer, at: number, offset: number, length: number): Promise<void> {
    if (length > this.buf.length) {
      await readFully(this.fh, into.subarray(at, at + length), length, offset);
      return;
    }
    if (offset < this.start || offset + length > this.end) {
      this.start = offset;
      this.end = Math.min(this.length, offset + this.buf.length);
      await readFully(this.fh, this.buf, this.end - this.start, this.start);
    }
    this.buf.copy(into, at, offset - this.start, offset - this.start + length);
  }
}

/**
 * Applies the segments of a v2 delta (the header already read and checked), calling `emit` with each
 * rebuilt segment in target order. Holds one segment, its differences and literals (together one segment)
 * and its compressed payloads; refuses a segment before emitting any of its bytes.
 */
export async function applySegments(
  reader: StreamReader,
  header: DeltaHeaderV2,
  source: FileHandle,
  emit: (bytes: Buffer, targetOffset: number) => Promise<void>,
): Promise<void> {
  const sourceLength = header.source.length;
  const window = new SourceWindow(source, sourceLength);
  const segmentBuffer = Math.min(header.segmentBytes, Math.max(header.target.length, 1));
  const out = Buffer.allocUnsafe(segmentBuffer);
  // Differences and literals of one segment together are one segment long: one buffer, literals after.
  const streams = Buffer.allocUnsafe(segmentBuffer);
  const controlBuffer = Buffer.allocUnsafe(segmentBuffer + CONTROL_SLACK_BYTES);
  for (let s = 0; s < header.segmentCount; s++) {
    const segmentStart = s * header.segmentBytes;
    const length = Math.min(header.segmentBytes, header.target.length - segmentStart);
    const seg = decodeSegmentHeader(await reader.readExact(SEGMENT_HEADER_BYTES, `segment ${s}'s header`));
    if (seg.coverCount > length) {
      throw new DeltaError('bad-operation', `segment ${s} declares more covers than bytes`);
    }
    if (seg.controlLength > seg.coverCount * MAX_CONTROL_BYTES_PER_COVER) {
      throw new DeltaError('bad-operation', `segment ${s}'s control stream is longer than its covers need`);
    }
    const payload = seg.controlPayload + seg.diffPayload + seg.literalPayload;
    if (payload > header.maxPayloadBytes) {
      throw new DeltaError(
        'too-large',
        `segment ${s}'s payloads exceed the header's ${header.maxPayloadBytes}`,
      );
    }
    if (seg.controlLength > length + CONTROL_SLACK_BYTES) {
      throw new DeltaError('too-large', `segment ${s}'s control stream is longer than the segment`);
    }
    await inflateInto(
      await reader.readExact(seg.controlPayload, `segment ${s}'s control`),
      controlBuffer,
      seg.controlLength,
      'control',
    );
    const control = controlBuffer.subarray(0, seg.controlLength);
    const bounds = columnBounds(control, seg.coverCount, s);
    // First pass: every cover checked (and the covered total known) before any stream is decoded.
    let [gaps, olds, lengths] = columnReaders(control, bounds);
    let at = 0;
    let expectedOld = segmentStart;
    let covered = 0;
    for (let c = 0; c < seg.coverCount; c++) {
      const gap = gaps.varint();
      const oldStart = expectedOld + gap + olds.signed();
      const coverLength = lengths.varint();
      if (coverLength < 1) throw new DeltaError('bad-operation', `segment ${s} has an empty cover`);
      if (at + gap + coverLength > length) {
        throw new DeltaError('overrun', `segment ${s}'s cover ${c} runs past the segment's end`);
      }
      if (oldStart < 0 || oldStart + coverLength > sourceLength) {
        throw new DeltaError('source-range', `segment ${s}'s cover ${c} reads outside the source`, {
          oldStart,
          length: coverLength,
        });
      }
      at += gap + coverLength;
      covered += coverLength;
      expectedOld = oldStart + coverLength;
    }
    await inflateInto(
      await reader.readExact(seg.diffPayload, `segment ${s}'s diff`),
      streams,
      covered,
      'diff',
    );
    await inflateInto(
      await reader.readExact(seg.literalPayload, `segment ${s}'s literals`),
      streams.subarray(covered),
      length - covered,
      'literal',
    );
    const diff = streams;
    const literal = streams.subarray(covered, length);
    // Second pass: the same columns again, now writing the segment.
    [gaps, olds, lengths] = columnReaders(control, bounds);
    expectedOld = segmentStart;
    let o = 0;
    let d = 0;
    let l = 0;
    for (let c = 0; c < seg.coverCount; c++) {
      const gap = gaps.varint();
      const oldStart = expectedOld + gap + olds.signed();
      const coverLength = lengths.varint();
      literal.copy(out, o, l, l + gap);
      o += gap;
      l += gap;
      await window.copy(out, o, oldStart, coverLength);
      for (let k = 0; k < coverLength; k++) out[o + k] = (out[o + k]! + diff[d + k]!) & 0xff;
      o += coverLength;
      d += coverLength;
      expectedOld = oldStart + coverLength;
    }
    literal.copy(out, o, l);
    await emit(out.subarray(0, length), segmentStart);
  }
}
