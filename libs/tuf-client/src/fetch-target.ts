import { resolve } from 'node:path';
import type { ResumableFetcherOptions } from './resumable-fetcher.js';
import { checkOutputSlot, placeVerifiedFile } from './slot-io.js';
import { TufSession } from './tuf-session.js';

export { targetUrl } from './tuf-session.js';

export interface FetchTargetOptions {
  /** Otter server base URL, e.g. `https://otter.example.com`. */
  serverUrl: string;
  /** The root.json this device trusts initially; copied into the state dir once and rotated there by TUF. */
  trustedRootPath: string;
  /** TUF target path, e.g. `images/rpi4/os-2.4.0.img`. */
  targetPath: string;
  /**
   * Where the verified file lands. A file only ever appears complete and verified; a block device is written
   * in place after the download verified, then read back.
   */
  outFile: string;
  /** Holds the TUF metadata cache (`metadata/`) and partial downloads (`downloads/<sha256>.part`). */
  stateDir: string;
  /** Called as bytes arrive; `received` counts bytes already on disk from an earlier attempt. */
  onProgress?: (progress: { received: number; total: number }) => void;
  /** Transport settings (timeouts, extra headers). */
  fetcher?: ResumableFetcherOptions;
}

export interface FetchTargetResult {
  /** Absolute path of the verified file. */
  path: string;
  length: number;
  sha256: string;
  /** Offset the download continued from (0 when it started from scratch or started over). */
  resumedFrom: number;
  /** Bytes received over the network in this call. */
  bytesDownloaded: number;
}

/**
 * Refreshes the image repository's TUF metadata, looks up `targetPath` in it (through any delegations) and
 * downloads that target, resuming an earlier partial download. The file is checked against the signed length
 * and hashes before it is moved to `outFile`; bytes that do not match are deleted.
 */
export async function fetchTarget(options: FetchTargetOptions): Promise<FetchTargetResult> {
  const session = await TufSession.open(options);
  const target = await session.require(options.targetPath);
  const path = resolve(options.outFile);
  await checkOutputSlot(path, undefined, target.length);
  const { partFile, resumedFrom, bytesDownloaded } = await session.download(
    target,
    options.onProgress && ((received, total) => options.onProgress?.({ received, total })),
  );
  await placeVerifiedFile(partFile, path, target);
  return { path, length: target.length, sha256: target.sha256, resumedFrom, bytesDownloaded };
}
