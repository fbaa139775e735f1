import { OtterError, type ErrorCode } from '#otter/errors';

/**
 * Otter delta format, version 1 (docs/delta-format.md is the byte-by-byte reference; keep the two in step).
 *
 * A delta is a fixed header followed by operations that cover the target image exactly once, in increasing
 * target order. Every integer is big-endian and unsigned; 64-bit fields must stay below 2^53 so they are
 * exact JavaScript numbers.
 */
export const DELTA_MAGIC = Buffer.from('OTTERDLT', 'latin1');
export const DELTA_FORMAT_VERSION = 1;
export const DELTA_HEADER_BYTES = 112;

export const OP_COPY = 1;
export const OP_ZERO = 2;
export const OP_BSDIFF = 3;
export const OP_RAW = 4;
export type OpType = typeof OP_COPY | typeof OP_ZERO | typeof OP_BSDIFF | typeof OP_RAW;

/** Size of each operation's header; its payload (BSDIFF, RAW) follows immediately. */
export const OP_HEADER_BYTES: Readonly<Record<OpType, number>> = {
  [OP_COPY]: 32,
  [OP_ZERO]: 24,
  [OP_BSDIFF]: 48,
  [OP_RAW]: 32,
};

export const OP_NAMES: Readonly<Record<OpType, 'copy' | 'zero' | 'bsdiff' | 'raw'>> = {
  [OP_COPY]: 'copy',
  [OP_ZERO]: 'zero',
  [OP_BSDIFF]: 'bsdiff',
  [OP_RAW]: 'raw',
};

/** A bsdiff-node patch starts with this magic and three 8-byte sign-magnitude little-endian lengths. */
export const BSDIFF_MAGIC = Buffer.from('BSDIFF40', 'latin1');
export const BSDIFF_HEADER_BYTES = 32;

export interface ImageIdentity {
  length: number;
  /** Lowercase hex. */
  sha256: string;
}

export interface DeltaHeader {
  version: typeof DELTA_FORMAT_VERSION;
  blockSize: number;
  source: ImageIdentity;
  target: ImageIdentity;
  operationCount: number;
  /** The largest srcLength, length or payloadLength of any BSDIFF or RAW operation: what an applier buffers. */
  maxOperationBytes: number;
}

export type DeltaOperation =
  | { type: typeof OP_COPY; targetOffset: number; length: number; srcOffset: number }
  | { type: typeof OP_ZERO; targetOffset: number; length: number }
  | {
      type: typeof OP_BSDIFF;
      targetOffset: number;
      length: number;
      srcOffset: number;
      srcLength: number;
      payloadLength: number;
    }
  | { type: typeof OP_RAW; targetOffset: number; length: number; payloadLength: number };

/** Why a delta was refused or could not be built; stable strings that tests and logs match on. */
export type DeltaFailure =
  | 'truncated'
  | 'bad-magic'
  | 'unsupported-version'
  | 'bad-header'
  | 'target-mismatch'
  | 'source-mismatch'
  | 'bad-operation'
  | 'out-of-order'
  | 'overlap'
  | 'gap'
  | 'overrun'
  | 'source-range'
  | 'too-large'
  | 'incomplete'
  | 'trailing-data'
  | 'zstd-overflow'
  | 'zstd-invalid'
  | 'bsdiff-invalid'
  | 'bsdiff-length'
  | 'bsdiff-failed'
  | 'bsdiff-timeout'
  | 'result-mismatch'
  | 'bad-output'
  | 'budget-too-small'
  | 'bad-plan';

const FAILURE_CODES: Readonly<Record<DeltaFailure, ErrorCode>> = {
  truncated: 'DELTA_MALFORMED',
  'bad-magic': 'DELTA_MALFORMED',
  'unsupported-version': 'DELTA_MALFORMED',
  'bad-header': 'DELTA_MALFORMED',
  'target-mismatch': 'DELTA_TARGET_MISMATCH',
  'source-mismatch': 'DELTA_SOURCE_MISMATCH',
  'bad-operation': 'DELTA_MALFORMED',
  'out-of-order': 'DELTA_MALFORMED',
  overlap: 'DELTA_MALFORMED',
  gap: 'DELTA_MALFORMED',
  overrun: 'DELTA_MALFORMED',
  'source-range': 'DELTA_MALFORMED',
  'too-large': 'DELTA_LIMIT_EXCEEDED',
  incomplete: 'DELTA_MALFORMED',
  'trailing-data': 'DELTA_MALFORMED',
  'zstd-overflow': 'DELTA_MALFORMED',
  'zstd-invalid': 'DELTA_MALFORMED',
  'bsdiff-invalid': 'DELTA_MALFORMED',
  'bsdiff-length': 'DELTA_MALFORMED',
  'bsdiff-failed': 'DELTA_MALFORMED',
  'bsdiff-timeout': 'DELTA_MALFORMED',
  'result-mismatch': 'DELTA_TARGET_MISMATCH',
  'bad-output': 'VALIDATION_FAILED',
  'budget-too-small': 'VALIDATION_FAILED',
  'bad-plan': 'DELTA_BUILD_FAILED',
};

export class DeltaError extends OtterError {
  readonly reason: DeltaFailure;

  constructor(reason: DeltaFailure, message: string, details?: Record<string, unknown>) {
    super(FAILURE_CODES[reason], message, { reason, ...details });
    this.reason = reason;
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function assertSha256Hex(value: string, what: string): string {
  const lower = value.toLowerCase();
  if (!SHA256_HEX.test(lower)) throw new DeltaError('bad-header', `${what} must be 64 hex characters`);
  return lower;
}

export function writeU64(buf: Buffer, value: number, offset: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`u64 field out of range: ${value}`);
  buf.writeBigUInt64BE(BigInt(value), offset);
}

/** Reads a u64 field; values a JavaScript number cannot hold exactly are refused as malformed (`failure`). */
export function readU64(
  buf: Buffer,
  offset: number,
  field: string,
  failure: DeltaFailure = 'bad-operation',
): number {
  const value = buf.readBigUInt64BE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new DeltaError(failure, `${field} does not fit in 53 bits`, { field });
  }
  return Number(value);
}

export function encodeHeader(header: DeltaHeader): Buffer {
  const buf = Buffer.alloc(DELTA_HEADER_BYTES);
  DELTA_MAGIC.copy(buf, 0);
  buf.writeUInt16BE(header.version, 8);
  buf.writeUInt16BE(0, 10);
  buf.writeUInt32BE(header.blockSize, 12);
  writeU64(buf, header.source.length, 16);
  buf.write(assertSha256Hex(header.source.sha256, 'source sha256'), 24, 32, 'hex');
  writeU64(buf, header.target.length, 56);
  buf.write(assertSha256Hex(header.target.sha256, 'target sha256'), 64, 32, 'hex');
  writeU64(buf, header.operationCount, 96);
  writeU64(buf, header.maxOperationBytes, 104);
  return buf;
}

/** Parses the fixed header; checks only what the header alone can tell (magic, version, reserved bits). */
export function decodeHeader(buf: Buffer): DeltaHeader {
  if (buf.length !== DELTA_HEADER_BYTES) throw new DeltaError('truncated', 'delta header is truncated');
  if (!buf.subarray(0, 8).equals(DELTA_MAGIC)) throw new DeltaError('bad-magic', 'not an Otter delta');
  const version = buf.readUInt16BE(8);
  if (version !== DELTA_FORMAT_VERSION) {
    throw new DeltaError('unsupported-version', `delta format version ${version} is not supported`, {
      version,
    });
  }
  if (buf.readUInt16BE(10) !== 0) throw new DeltaError('bad-header', 'reserved header flags are set');
  const blockSize = buf.readUInt32BE(12);
  if (blockSize < 512 || blockSize > 1 << 20 || (blockSize & (blockSize - 1)) !== 0) {
    throw new DeltaError('bad-header', `block size ${blockSize} is not a power of two in [512, 1 MiB]`);
  }
  try {
    return {
      version: DELTA_FORMAT_VERSION,
      blockSize,
      source: { length: readU64(buf, 16, 'source.length'), sha256: buf.toString('hex', 24, 56) },
      target: { length: readU64(buf, 56, 'target.length'), sha256: buf.toString('hex', 64, 96) },
      operationCount: readU64(buf, 96, 'operationCount'),
      maxOperationBytes: readU64(buf, 104, 'maxOperationBytes'),
    };
  } catch (e) {
    if (e instanceof DeltaError) throw new DeltaError('bad-header', e.message);
    throw e;
  }
}

export function encodeOperation(op: DeltaOperation): Buffer {
  const buf = Buffer.alloc(OP_HEADER_BYTES[op.type]);
  buf.writeUInt8(op.type, 0);
  writeU64(buf, op.targetOffset, 8);
  writeU64(buf, op.length, 16);
  switch (op.type) {
    case OP_COPY:
      writeU64(buf, op.srcOffset, 24);
      break;
    case OP_ZERO:
      break;
    case OP_BSDIFF:
      writeU64(buf, op.srcOffset, 24);
      writeU64(buf, op.srcLength, 32);
      writeU64(buf, op.payloadLength, 40);
      break;
    case OP_RAW:
      writeU64(buf, op.payloadLength, 24);
      break;
  }
  return buf;
}

/** The operation type from an operation header's first byte, or a DeltaError for an unknown type. */
export function operationType(firstByte: number): OpType {
  if (firstByte === OP_COPY || firstByte === OP_ZERO || firstByte === OP_BSDIFF || firstByte === OP_RAW) {
    return firstByte;
  }
  throw new DeltaError('bad-operation', `unknown operation type ${firstByte}`, { type: firstByte });
}

/** Parses one operation header (its full OP_HEADER_BYTES); reserved bytes must be zero. */
export function decodeOperation(buf: Buffer): DeltaOperation {
  const type = operationType(buf.readUInt8(0));
  if (buf.length !== OP_HEADER_BYTES[type])
    throw new DeltaError('truncated', 'operation header is truncated');
  for (let i = 1; i < 8; i++) {
    if (buf[i] !== 0) throw new DeltaError('bad-operation', 'reserved operation bytes are set');
  }
  const targetOffset = readU64(buf, 8, 'targetOffset');
  const length = readU64(buf, 16, 'length');
  switch (type) {
    case OP_COPY:
      return { type, targetOffset, length, srcOffset: readU64(buf, 24, 'srcOffset') };
    case OP_ZERO:
      return { type, targetOffset, length };
    case OP_BSDIFF:
      return {
        type,
        targetOffset,
        length,
        srcOffset: readU64(buf, 24, 'srcOffset'),
        srcLength: readU64(buf, 32, 'srcLength'),
        payloadLength: readU64(buf, 40, 'payloadLength'),
      };
    case OP_RAW:
      return { type, targetOffset, length, payloadLength: readU64(buf, 24, 'payloadLength') };
  }
}

/** bsdiff's "offtin": 8 bytes little-endian magnitude with the sign in the top bit. */
function readBsdiffLength(buf: Buffer, offset: number): number {
  const raw = buf.readBigUInt64LE(offset);
  const negative = (raw & (1n << 63n)) !== 0n;
  const magnitude = raw & ((1n << 63n) - 1n);
  if (negative && magnitude !== 0n) return -1;
  return magnitude > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(magnitude);
}

/**
 * Checks a bsdiff payload's own header before any native code sees it: the magic, non-negative block
 * lengths that fit in the payload, and a result size equal to the operation's declared length. bspatch
 * allocates the result size from this header, so this is what bounds its memory.
 */
export function checkBsdiffPayloadHeader(head: Buffer, payloadLength: number, expectedLength: number): void {
  if (head.length < BSDIFF_HEADER_BYTES || payloadLength < BSDIFF_HEADER_BYTES) {
    throw new DeltaError('bsdiff-invalid', 'bsdiff payload is shorter than its header');
  }
  if (!head.subarray(0, 8).equals(BSDIFF_MAGIC)) throw new DeltaError('bsdiff-invalid', 'bad bsdiff magic');
  const controlLength = readBsdiffLength(head, 8);
  const diffLength = readBsdiffLength(head, 16);
  const newSize = readBsdiffLength(head, 24);
  if (
    controlLength < 0 ||
    diffLength < 0 ||
    BSDIFF_HEADER_BYTES + controlLength + diffLength > payloadLength
  ) {
    throw new DeltaError('bsdiff-invalid', 'bsdiff block lengths do not fit the payload');
  }
  if (newSize !== expectedLength) {
    throw new DeltaError(
      'bsdiff-length',
      `bsdiff payload produces ${newSize} bytes, operation declares ${expectedLength}`,
      {
        produces: newSize,
        declared: expectedLength,
      },
    );
  }
}
