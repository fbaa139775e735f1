import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { constants as zlibConstants, createZstdCompress } from 'node:zlib';
import { expect } from 'vitest';
import { applyDelta, type ApplyDeltaOptions } from './apply.js';
import { DeltaError, type DeltaFailure } from './format.js';

// The shared kit of the hostile-delta specs (one per format version): not exported from the lib.

const MiB = 1024 * 1024;

/** The delta as a stream of 64 KiB chunks, like a download. */
export function streamOf(delta: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0; at < delta.length; at += 64 * 1024) chunks.push(delta.subarray(at, at + 64 * 1024));
  return Readable.from(chunks);
}

/** zstd of `bytes` zeros, streamed; `windowLog` small makes a frame any decoder window accepts. */
export async function zstdOfZeros(bytes: number, windowLog?: number): Promise<Buffer> {
  const z = createZstdCompress(
    windowLog === undefined ? {} : { params: { [zlibConstants.ZSTD_c_windowLog]: windowLog } },
  );
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of z) chunks.push(chunk as Buffer);
  })();
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < bytes / MiB; i++) if (!z.write(zeros)) await once(z, 'drain');
  z.end();
  await collected;
  return Buffer.concat(chunks);
}

/**
 * An existing "slot" file an attack is applied over: every refused apply must leave it exactly as it was,
 * with no temporary file next to it.
 */
export class AttackedSlot {
  static readonly PREVIOUS = Buffer.from('the image this slot held before the update\n');
  dir = '';
  path = '';

  /** A fresh slot directory under `root` (call before each attack). */
  reset(root: string): void {
    this.dir = mkdtempSync(join(root, 'slot-'));
    this.path = join(this.dir, 'slot.img');
    writeFileSync(this.path, AttackedSlot.PREVIOUS);
  }

  /** Applies over the slot; expects a DeltaError with `reason` and the slot untouched. */
  async expectRefused(
    options: Omit<ApplyDeltaOptions, 'outFile'>,
    reason: DeltaFailure,
  ): Promise<DeltaError> {
    const error = await applyDelta({ ...options, outFile: this.path }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeltaError);
    expect((error as DeltaError).reason).toBe(reason);
    expect(readFileSync(this.path).equals(AttackedSlot.PREVIOUS)).toBe(true);
    expect(readdirSync(this.dir)).toEqual(['slot.img']);
    return error as DeltaError;
  }
}
