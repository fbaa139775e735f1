import { TpmWireError, type TpmWireErrorCode } from './tpm-wire-error.js';

/** Bytes as a device sends them (a Buffer or any Uint8Array, viewed without a copy), or undefined. */
export function bytesOf(input: unknown): Buffer | undefined {
  if (Buffer.isBuffer(input)) return input;
  if (input instanceof Uint8Array) return Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  return undefined;
}

/** bytesOf, refusing anything that is not bytes with `code`. */
export function asBytes(input: unknown, code: TpmWireErrorCode, what: string): Buffer {
  const bytes = bytesOf(input);
  if (!bytes) throw new TpmWireError(code, `${what} must be bytes`);
  return bytes;
}

/**
 * A bounds-checked big-endian cursor over untrusted TPM structures. Every read checks the remaining length
 * first and throws TpmWireError(code) instead of letting Buffer throw a RangeError. Slices are copies, so
 * a parsed structure does not change if the caller reuses the input buffer.
 */
export class TpmReader {
  private offset = 0;

  constructor(
    private readonly bytes: Buffer,
    private readonly code: TpmWireErrorCode,
    private readonly what: string,
  ) {}

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  fail(reason: string): never {
    throw new TpmWireError(this.code, `${this.what}: ${reason}`);
  }

  private need(length: number, field: string): void {
    if (length > this.remaining) {
      this.fail(
        `truncated at ${field} (needs ${length} bytes at offset ${this.offset}, ${this.remaining} left)`,
      );
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.offset++]!;
  }

  u16(field: string): number {
    this.need(2, field);
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(field: string): number {
    this.need(4, field);
    const value = this.bytes.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const value = this.bytes.readBigUInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  take(length: number, field: string): Buffer {
    this.need(length, field);
    const slice = Buffer.from(this.bytes.subarray(this.offset, this.offset + length));
    this.offset += length;
    return slice;
  }

  /** A TPM2B: u16 size then that many bytes, refused when larger than the type allows (`max`). */
  tpm2b(field: string, max: number): Buffer {
    const size = this.u16(`${field} size`);
    if (size > max) this.fail(`${field} is ${size} bytes, at most ${max} allowed`);
    return this.take(size, field);
  }

  /** The bytes read from `start` to the current position (a copy). */
  since(start: number): Buffer {
    return Buffer.from(this.bytes.subarray(start, this.offset));
  }

  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing bytes`);
  }
}
