import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { DownloadReport } from '#otter/contracts';
import { applyDelta } from '#otter/delta';
import { findDelta, type DeltaMatch } from './find-delta.js';
import type { ResumableFetcherOptions } from './resumable-fetcher.js';
import {
  checkOutputSlot,
  isBlockDevice,
  moveIntoPlace,
  placeVerifiedFile,
  statOrUndefined,
  verifySlot,
} from './slot-io.js';
import { describeError, TufClientError } from './tuf-client-error.js';
import { TufSession, type SignedTarget, type VerifiedDownload } from './tuf-session.js';

export type InstallPhase = 'delta-download' | 'delta-apply' | 'full-download';

export interface InstallTargetOptions {
  /** Otter server base URL. */
  serverUrl: string;
  /** The root.json this device trusts initially (seeds the state dir's metadata cache). */
  trustedRootPath: string;
  /** The image target to install: `images/{hardware}/{version}`. */
  targetPath: string;
  /** The current (running) slot: an image file, or a block device whose first bytes are the image. */
  currentFile: string;
  /**
   * The inactive slot the new image goes to. A regular file is replaced only by the complete, verified
   * image (temporary file next to it, then rename). A block device is written in place: until this call
   * returns, its content is not a valid image and must not be marked bootable.
   */
  outFile: string;
  /** TUF metadata cache (`metadata/`), partial downloads (`downloads/`), scratch space (`apply/`). */
  stateDir: string;
  onProgress?: (progress: { phase: InstallPhase; done: number; total: number }) => void;
  /**
   * Told what was downloaded once the install succeeded (the agent sends it to
   * `POST /api/v1/devices/me/downloads`). Best effort: a failure is returned as `reportError`, never thrown.
   */
  reportDownload?: (report: DownloadReport) => Promise<void>;
  /**
   * The image as verified before (checkDirectorAssignment): the image repository must still sign exactly
   * this length and sha256 for `targetPath` in this call's own refresh, or nothing is installed.
   */
  expectedImage?: { length: number; sha256: string };
  fetcher?: ResumableFetcherOptions;
}

export interface InstallTargetResult {
  method: 'delta' | 'full';
  target: string;
  /** Absolute path of the slot written. */
  path: string;
  /** Signed length of the image. */
  length: number;
  /** Signed sha256 of the image, which the slot now holds. */
  sha256: string;
  /** Bytes received over the network for targets in this call: the delta, plus the image after a fallback. */
  bytesDownloaded: number;
  /**
   * Bytes received of the one target the slot was built from (the delta, or the image after a fallback), so at
   * most that target's signed length: what the download report to Otter carries, which Otter bounds by the
   * full image's length.
   */
  sourceBytesDownloaded: number;
  /** Bytes of the full image (what a node without deltas downloads). */
  fullBytes: number;
  /** Where the download that produced the image continued from (0: from scratch). */
  resumedFrom: number;
  /** The delta target used or attempted. */
  delta?: string;
  /** Why the full image was downloaded instead of a delta. */
  fallbackReason?: string;
  /** Set when reportDownload failed (the install itself succeeded). */
  reportError?: string;
}

/**
 * Installs `targetPath` into the output slot, by delta when the repository signs one from the current
 * slot's image, else (or when anything about the delta fails) by downloading the full image.
 *
 * The delta path: one tuf-js refresh; the image target's signed length and sha256; a delta found by
 * `findDelta` (see there); the delta downloaded (resumable) and verified against its own signed target;
 * then streamed into `applyDelta`, which refuses a malformed or hostile delta before any of its bytes reach
 * the slot, never writes past the signed image length, and verifies the result against the image's signed
 * sha256 (the image's sha512 too when signed) before the slot holds it. Any failure on that path (no delta,
 * a download or verification failure, a patch error, a result that does not match, a current slot that is
 * not the delta's source) falls back to the verified, resumable full download, with the reason reported.
 */
export async function installTarget(options: InstallTargetOptions): Promise<InstallTargetResult> {
  const session = await TufSession.open(options);
  const image = await session.require(options.targetPath);
  const expected = options.expectedImage;
  if (expected && (expected.length !== image.length || expected.sha256 !== image.sha256)) {
    throw new TufClientError(
      'ASSIGNMENT_REFUSED',
      `${options.targetPath} is now signed with another length or sha256 than the one verified before; nothing installed`,
    );
  }
  const outFile = resolve(options.outFile);
  const currentFile = resolve(options.currentFile);
  await checkOutputSlot(outFile, currentFile, image.length);
  const counter = new ByteCounter();
  const progress = (phase: InstallPhase) => (done: number, total: number) =>
    options.onProgress?.({ phase, done, total });

  let delta: DeltaMatch | undefined;
  let fallbackReason: string;
  try {
    const hardware = hardwareOf(options.targetPath);
    const found =
      hardware === undefined
        ? { reason: `${options.targetPath} is not images/{hardware}/{version}: no delta to look for` }
        : await findDelta(session, image, hardware, currentFile);
    if ('reason' in found) {
      fallbackReason = found.reason;
    } else {
      delta = found.delta;
      const { resumedFrom } = await installFromDelta(session, delta, image, {
        currentFile,
        outFile,
        stateDir: options.stateDir,
        counter,
        progress,
      });
      return await finish(options, {
        method: 'delta',
        target: image.path,
        path: outFile,
        length: image.length,
        sha256: image.sha256,
        bytesDownloaded: counter.total,
        sourceBytesDownloaded: counter.lastSucceeded,
        fullBytes: image.length,
        resumedFrom,
        delta: delta.target.path,
      });
    }
  } catch (error) {
    fallbackReason = delta
      ? `delta ${delta.target.path}: ${reasonOf(error)}`
      : `delta lookup: ${reasonOf(error)}`;
  }

  let resumedFrom: number;
  try {
    const download = await counter.download(session, image, progress('full-download'));
    resumedFrom = download.resumedFrom;
    await placeVerifiedFile(download.partFile, outFile, image);
  } catch (error) {
    if (error instanceof TufClientError) {
      throw new TufClientError(
        error.code,
        `${error.message} (after falling back from a delta: ${fallbackReason})`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  // A delta download cut short is not needed any more.
  if (delta) await rm(session.partFileFor(delta.target), { force: true });
  return finish(options, {
    method: 'full',
    target: image.path,
    path: outFile,
    length: image.length,
    sha256: image.sha256,
    bytesDownloaded: counter.total,
    sourceBytesDownloaded: counter.lastSucceeded,
    fullBytes: image.length,
    resumedFrom,
    ...(delta && { delta: delta.target.path }),
    fallbackReason,
  });
}

interface DeltaInstallContext {
  currentFile: string;
  outFile: string;
  stateDir: string;
  counter: ByteCounter;
  progress: (phase: InstallPhase) => (done: number, total: number) => void;
}

async function installFromDelta(
  session: TufSession,
  delta: DeltaMatch,
  image: SignedTarget,
  context: DeltaInstallContext,
): Promise<{ resumedFrom: number }> {
  const { currentFile, outFile, counter, progress } = context;
  const download = await counter.download(session, delta.target, progress('delta-download'));
  const device = await isBlockDevice(outFile);
  // A file slot gets a temporary next to it, renamed over it only once every signed hash matched.
  const output = device
    ? outFile
    : join(dirname(outFile), `.${basename(outFile)}.otter-install-${randomBytes(6).toString('hex')}.tmp`);
  const workDir = device ? join(resolve(context.stateDir), 'apply') : undefined;
  await mkdir(workDir ?? dirname(outFile), { recursive: true });
  try {
    const result = await applyDelta({
      sourceFile: currentFile,
      delta: createReadStream(download.partFile),
      outFile: output,
      // The image target's signed identity: the delta's own header and custom metadata are not trusted.
      expectedTarget: { length: image.length, sha256: image.sha256 },
      maxOutputBytes: image.length,
      ...(workDir && { workDir }),
      onProgress: progress('delta-apply'),
    });
    if (result.length !== image.length || result.sha256 !== image.sha256) {
      throw new TufClientError(
        'TARGET_VERIFICATION_FAILED',
        `the delta produced ${result.sha256}, signed ${image.sha256}`,
      );
    }
    // applyDelta verified sha256 and read the result back; a signed sha512 is checked here.
    if (image.sha512 !== undefined) await verifySlot(output, image);
    if (!device) await moveIntoPlace(output, outFile);
    return { resumedFrom: download.resumedFrom };
  } catch (error) {
    if (!device) await rm(output, { force: true });
    throw error;
  } finally {
    // Verified or not, a delta that was applied (or refused) is not kept: a retry falls back or re-fetches.
    await rm(download.partFile, { force: true });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }
}

async function finish(
  options: InstallTargetOptions,
  result: InstallTargetResult,
): Promise<InstallTargetResult> {
  if (!options.reportDownload) return result;
  try {
    await options.reportDownload({
      // A delta install reports the patch it downloaded (the server finds the release it leads to).
      targetPath: result.method === 'delta' && result.delta ? result.delta : result.target,
      method: result.method,
      bytesDownloaded: result.sourceBytesDownloaded,
      fullBytes: result.fullBytes,
    });
    return result;
  } catch (error) {
    return { ...result, reportError: reasonOf(error) };
  }
}

/** `images/{hardware}/{version}` → hardware. */
function hardwareOf(targetPath: string): string | undefined {
  const segments = targetPath.split('/');
  return segments.length === 3 && segments[0] === 'images' && segments[1] && segments[2]
    ? segments[1]
    : undefined;
}

/** `CODE: message` when the error has a code (TufClientError, DeltaError, Node's errors). */
function reasonOf(error: unknown): string {
  const message = describeError(error);
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) && !message.startsWith(code)
    ? `${code}: ${message}`
    : message;
}

/** Bytes received over the network across the downloads of one install, failed ones included. */
class ByteCounter {
  total = 0;
  /** What the last download that succeeded received: at most its target's signed length. */
  lastSucceeded = 0;

  /**
   * Downloads `target` through the session and counts what it received: exactly on success, and from the
   * progress callbacks when it fails half way (what the link carried still counts).
   */
  async download(
    session: TufSession,
    target: SignedTarget,
    onProgress: (done: number, total: number) => void,
  ): Promise<VerifiedDownload> {
    let last = (await statOrUndefined(session.partFileFor(target)))?.size ?? 0;
    let seen = 0;
    try {
      const download = await session.download(target, (received, total) => {
        // A download that starts over reports from 0 again.
        seen += received >= last ? received - last : received;
        last = received;
        onProgress(received, total);
      });
      this.total += download.bytesDownloaded;
      this.lastSucceeded = download.bytesDownloaded;
      return download;
    } catch (error) {
      this.total += seen;
      throw error;
    }
  }
}
