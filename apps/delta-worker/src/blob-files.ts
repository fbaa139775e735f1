import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStore } from '#otter/storage';

/** Streams a whole blob to a file, and fails unless its bytes are exactly the expected image. */
export async function downloadBlob(
  blobs: BlobStore,
  key: string,
  file: string,
  expected: { sha256: string; length: number },
  onBytes?: (done: number) => void,
): Promise<void> {
  const hash = createHash('sha256');
  let length = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      length += chunk.length;
      onBytes?.(length);
      callback(null, chunk);
    },
  });
  await pipeline(await blobs.get(key), meter, createWriteStream(file, { mode: 0o600 }));
  const sha256 = hash.digest('hex');
  if (length !== expected.length || sha256 !== expected.sha256) {
    throw new Error(
      `blob ${key} is not the signed image: ${length} bytes, sha256 ${sha256}; expected ${expected.length}, ${expected.sha256}`,
    );
  }
}

/**
 * Writes bytes [start, start + length) of a blob at the same offsets of an open file. The file stays sparse
 * elsewhere, so an extent's inputs cost their own size on disk, not the image's.
 */
export async function downloadRange(
  blobs: BlobStore,
  key: string,
  fh: FileHandle,
  start: number,
  length: number,
): Promise<void> {
  if (length === 0) return;
  let position = start;
  for await (const chunk of await blobs.get(key, { start, end: start + length - 1 })) {
    const buf = chunk as Buffer;
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
      done += bytesWritten;
    }
    position += buf.length;
  }
  if (position !== start + length) {
    throw new Error(`blob ${key}: range ${start}+${length} returned ${position - start} bytes`);
  }
}

/** A whole (small) blob in memory: a plan or one built operation, bounded by the extent size. */
export async function readBlob(blobs: BlobStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await blobs.get(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    createReadStream(file, { highWaterMark: 1024 * 1024 }),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) hash.update(chunk);
    },
  );
  return hash.digest('hex');
}
