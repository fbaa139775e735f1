import type { Readable } from 'node:stream';
import { DeltaError } from './format.js';

/** Pull-style reads of exact byte counts from a Readable, holding at most one of its chunks at a time. */
export class StreamReader {
  private readonly iterator: AsyncIterator<unknown>;
  private chunk: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes consumed so far (for error messages). */
  position = 0;

  constructor(stream: Readable) {
    this.iterator = stream[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.chunk.length === 0 && !this.ended) {
      const next = await this.iterator.next();
      if (next.done) {
        this.ended = true;
        break;
      }
      if (!Buffer.isBuffer(next.value))
        throw new TypeError('the delta stream must yield Buffers (no encoding)');
      this.chunk = next.value;
    }
    return this.chunk.length > 0;
  }

  /** Exactly `n` bytes (n is small: a header), or a 'truncated' DeltaError naming `what`. */
  async readExact(n: number, what: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      if (!(await this.fill())) {
        throw new DeltaError('truncated', `delta ended inside ${what} (at byte ${this.position + have})`);
      }
      const take = Math.min(n - have, this.chunk.length);
      parts.push(this.chunk.subarray(0, take));
      this.chunk = this.chunk.subarray(take);
      have += take;
    }
    this.position += n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /** Yields exactly `n` bytes in the stream's own chunk sizes; 'truncated' if the stream ends first. */
  async *take(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw new DeltaError('truncated', `delta ended inside ${what}`);
      const take = Math.min(left, this.chunk.length);
      const piece = this.chunk.subarray(0, take);
      this.chunk = this.chunk.subarray(take);
      left -= take;
      this.position += take;
      yield piece;
    }
  }

  /** True when the stream has no more bytes. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }

  /** Stops reading (destroys the underlying stream through its iterator). */
  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}
