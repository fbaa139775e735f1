import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { DeltaError } from './format.js';

export const IO_CHUNK_BYTES = 1024 * 1024;

/** Reads exactly `length` bytes at `position` into `buf`, or fails as truncated (a file shorter than stated). */
export async function readFully(
  fh: FileHandle,
  buf: Buffer,
  length: number,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new DeltaError('truncated', `file ended at ${position + done}, expected ${position + length}`);
    }
    done += bytesRead;
  }
}

export async function writeFully(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** sha256 of the first `length` bytes of an open file (or block device), streamed in 1 MiB reads. */
export async function sha256OfRange(fh: FileHandle, length: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK_BYTES, Math.max(length, 1)));
  for (let position = 0; position < length;) {
    const n = Math.min(buf.length, length - position);
    await readFully(fh, buf, n, position);
    hash.update(buf.subarray(0, n));
    position += n;
  }
  return hash.digest('hex');
}

/** Copies [offset, offset + length) of `from` to the start of `to`, 1 MiB at a time. */
export async function copyRange(
  from: FileHandle,
  offset: number,
  length: number,
  to: FileHandle,
): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK_BYTES, Math.max(length, 1)));
  for (let done = 0; done < length;) {
    const n = Math.min(buf.length, length - done);
    await readFully(from, buf, n, offset + done);
    await writeFully(to, buf.subarray(0, n), done);
    done += n;
  }
}
