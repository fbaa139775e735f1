import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A temporary path beside `path`, so the final rename stays within one filesystem (and is atomic). */
export function siblingTempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Moves a fully written temporary file over `path`: fsync the data, rename, fsync the directory so the
 * rename itself survives a power cut. Readers see the old file or the new one, never a mix.
 */
export async function replaceDurably(tempPath: string, path: string): Promise<void> {
  try {
    await fsyncPath(tempPath);
    await rename(tempPath, path);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }
  await fsyncPath(dirname(path));
}
