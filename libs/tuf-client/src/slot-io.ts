import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TufClientError } from './tuf-client-error.js';

/**
 * File-system side of installing an image into a slot. A slot is a regular file (replaced atomically: it is
 * only ever the old image or the complete, verified new one) or a block device (the inactive partition,
 * written in place inside [0, image length)).
 */

const IO_CHUNK_BYTES = 1024 * 1024;

export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export async function isBlockDevice(path: string): Promise<boolean> {
  return (await statOrUndefined(path))?.isBlockDevice() ?? false;
}

export async function digestFile(
  path: string,
  algorithms: readonly string[],
): Promise<{ length: number; digests: Record<string, string> }> {
  const hashes = algorithms.map((algorithm) => createHash(algorithm));
  let length = 0;
  for await (const chunk of createReadStream(path)) {
    const bytes = chunk as Buffer;
    length += bytes.length;
    for (const hash of hashes) hash.update(bytes);
  }
  const digests: Record<string, string> = {};
  algorithms.forEach((algorithm, i) => (digests[algorithm] = hashes[i]!.digest('hex')));
  return { length, digests };
}

/**
 * Digests of the first `length` bytes of a slot, reading exactly those bytes: a regular file must be exactly
 * `length` long (an image file holds one image), a block device at least that long. Undefined when the slot
 * cannot hold an image of that length.
 */
export async function digestSlotPrefix(
  path: string,
  length: number,
  algorithms: readonly string[] = ['sha256'],
): Promise<Record<string, string> | undefined> {
  const handle = await open(path, 'r');
  try {
    const info = await handle.stat();
    if (info.isFile() && info.size !== length) return undefined;
    if (!info.isFile() && !info.isBlockDevice()) return undefined;
    const hashes = algorithms.map((algorithm) => createHash(algorithm));
    const buffer = Buffer.allocUnsafe(Math.min(IO_CHUNK_BYTES, Math.max(length, 1)));
    for (let done = 0; done < length;) {
      const want = Math.min(buffer.length, length - done);
      const { bytesRead } = await handle.read(buffer, 0, want, done);
      if (bytesRead === 0) return undefined; // shorter than the image
      const view = buffer.subarray(0, bytesRead);
      for (const hash of hashes) hash.update(view);
      done += bytesRead;
    }
    const digests: Record<string, string> = {};
    algorithms.forEach((algorithm, i) => (digests[algorithm] = hashes[i]!.digest('hex')));
    return digests;
  } finally {
    await handle.close();
  }
}

/** Refuses an output slot that is the current slot, and a block device too small for the image. */
export async function checkOutputSlot(
  outFile: string,
  currentFile: string | undefined,
  length: number,
): Promise<void> {
  const out = await statOrUndefined(outFile);
  if (!out) return;
  if (currentFile !== undefined) {
    const current = await statOrUndefined(currentFile);
    const same =
      current !== undefined &&
      ((current.dev === out.dev && current.ino === out.ino) ||
        (current.isBlockDevice() && out.isBlockDevice() && current.rdev === out.rdev));
    if (same) {
      throw new TufClientError(
        'SLOT_INVALID',
        `the output slot ${outFile} is the current slot ${currentFile}`,
      );
    }
  }
  if (out.isBlockDevice()) {
    if (!(await deviceHolds(outFile, length))) {
      throw new TufClientError(
        'SLOT_INVALID',
        `block device ${outFile} is smaller than the ${length}-byte image`,
      );
    }
  } else if (!out.isFile()) {
    throw new TufClientError('SLOT_INVALID', `${outFile} is neither a regular file nor a block device`);
  }
}

/** Whether a block device has at least `length` bytes (reading its last needed byte). */
async function deviceHolds(path: string, length: number): Promise<boolean> {
  if (length === 0) return true;
  const handle = await open(path, 'r');
  try {
    const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, length - 1);
    return bytesRead === 1;
  } finally {
    await handle.close();
  }
}

/**
 * Puts a verified file into the output slot and removes it. A regular file is renamed into place (through a
 * flushed temporary copy next to it across file systems), so the slot never holds a half-written image. A
 * block device is written in place, flushed and read back against the signed hashes.
 */
export async function placeVerifiedFile(
  source: string,
  dest: string,
  expected: { length: number; sha256: string; sha512?: string },
): Promise<void> {
  if (await isBlockDevice(dest)) {
    await writeIntoDevice(source, dest, expected.length);
    await verifySlot(dest, expected);
    await rm(source, { force: true });
    return;
  }
  await moveIntoPlace(source, dest);
}

/** Checks the first `expected.length` bytes of a slot against the signed hashes. */
export async function verifySlot(
  path: string,
  expected: { length: number; sha256: string; sha512?: string },
): Promise<void> {
  const algorithms = expected.sha512 === undefined ? ['sha256'] : ['sha256', 'sha512'];
  const digests = await digestSlotPrefix(path, expected.length, algorithms);
  if (
    digests === undefined ||
    digests['sha256'] !== expected.sha256 ||
    (expected.sha512 !== undefined && digests['sha512'] !== expected.sha512)
  ) {
    throw new TufClientError(
      'TARGET_VERIFICATION_FAILED',
      `${path} does not hold the signed image (${algorithms.join(', ')} of ${expected.length} bytes checked)`,
    );
  }
}

async function writeIntoDevice(source: string, device: string, length: number): Promise<void> {
  const input = await open(source, 'r');
  let output: FileHandle | undefined;
  try {
    output = await open(device, 'r+');
    const buffer = Buffer.allocUnsafe(IO_CHUNK_BYTES);
    for (let done = 0; done < length;) {
      const { bytesRead } = await input.read(buffer, 0, Math.min(buffer.length, length - done), done);
      if (bytesRead === 0) throw new Error(`${source} ended after ${done} of ${length} bytes`);
      for (let written = 0; written < bytesRead;) {
        const { bytesWritten } = await output.write(buffer, written, bytesRead - written, done + written);
        written += bytesWritten;
      }
      done += bytesRead;
    }
    await output.sync();
  } finally {
    await output?.close();
    await input.close();
  }
}

/**
 * Renames the verified file to `dest` (atomic on one filesystem). Across filesystems it is copied next to
 * `dest` under a temporary name, flushed and renamed, so `dest` never exists half-written.
 */
export async function moveIntoPlace(source: string, dest: string): Promise<void> {
  const dir = dirname(dest);
  await mkdir(dir, { recursive: true });
  try {
    await rename(source, dest);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    const temp = join(dir, `.${basename(dest)}.${randomUUID()}.tmp`);
    try {
      await copyFile(source, temp);
      const handle = await open(temp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, dest);
    } catch (copyError) {
      await rm(temp, { force: true });
      throw copyError;
    }
    await rm(source, { force: true });
  }
  await syncDirectory(dir);
}

/** Makes a rename durable. Not every platform can open a directory for fsync; that is not fatal. */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}
