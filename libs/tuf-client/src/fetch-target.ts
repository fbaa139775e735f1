import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, copyFile, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Updater } from 'tuf-js';
import { ResumableFetcher, type ResumableFetcherOptions } from './resumable-fetcher.js';
import { describeError, TufClientError } from './tuf-client-error.js';

export interface FetchTargetOptions {
  /** Otter server base URL, e.g. `https://otter.example.com`. */
  serverUrl: string;
  /** The root.json this device trusts initially; copied into the state dir once and rotated there by TUF. */
  trustedRootPath: string;
  /** TUF target path, e.g. `images/rpi4/os-2.4.0.img`. */
  targetPath: string;
  /** Where the verified file lands. It only ever appears complete and verified. */
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

const TUF_PREFIX = '/tuf/image';
const HEX_SHA256 = /^[0-9a-f]{64}$/;
const HEX_SHA512 = /^[0-9a-f]{128}$/;

/**
 * Refreshes the image repository's TUF metadata, looks up `targetPath` in it (through any delegations) and
 * downloads that target, resuming an earlier partial download. The file is checked against the signed length
 * and hashes before it is moved to `outFile`; bytes that do not match are deleted.
 */
export async function fetchTarget(options: FetchTargetOptions): Promise<FetchTargetResult> {
  const serverUrl = parseServerUrl(options.serverUrl);
  const stateDir = resolve(options.stateDir);
  const metadataDir = join(stateDir, 'metadata');
  const downloadsDir = join(stateDir, 'downloads');
  await seedTrustedRoot(options.trustedRootPath, metadataDir);

  const fetcher = new ResumableFetcher(options.fetcher);
  const metadataBaseUrl = `${serverUrl}${TUF_PREFIX}/metadata`;
  const targetBaseUrl = `${serverUrl}${TUF_PREFIX}/targets`;
  let updater: Updater;
  try {
    // An Updater is single-use (a second refresh() throws): one per call.
    updater = new Updater({ metadataDir, metadataBaseUrl, targetBaseUrl, fetcher });
  } catch (error) {
    throw new TufClientError(
      'TRUSTED_ROOT_INVALID',
      `cannot load ${join(metadataDir, 'root.json')}: ${describeError(error)}`,
      { cause: error },
    );
  }

  let info: Awaited<ReturnType<Updater['getTargetInfo']>>;
  try {
    await updater.refresh();
    // Walks delegations, fetching and verifying delegated metadata on the way.
    info = await updater.getTargetInfo(options.targetPath);
  } catch (error) {
    throw new TufClientError(
      'METADATA_REFRESH_FAILED',
      `refreshing TUF metadata from ${metadataBaseUrl} failed: ${describeError(error)}`,
      { cause: error },
    );
  }
  if (!info) {
    throw new TufClientError(
      'TARGET_NOT_FOUND',
      `target "${options.targetPath}" is not in the signed metadata of ${serverUrl}`,
    );
  }

  const { length } = info;
  const sha256 = info.hashes['sha256'];
  const sha512 = info.hashes['sha512'];
  // The hash becomes a file name and a URL segment: only accept its exact form.
  if (
    sha256 === undefined ||
    !HEX_SHA256.test(sha256) ||
    (sha512 !== undefined && !HEX_SHA512.test(sha512))
  ) {
    throw new TufClientError(
      'TARGET_VERIFICATION_FAILED',
      `target "${options.targetPath}": signed hashes need a hex sha256 (and a hex sha512 if any)`,
    );
  }

  await mkdir(downloadsDir, { recursive: true });
  const partFile = join(downloadsDir, `${sha256}.part`);
  const { resumedFrom, bytesDownloaded } = await fetcher.downloadResumable({
    url: targetUrl(targetBaseUrl, options.targetPath, sha256),
    partFile,
    length,
    onProgress: options.onProgress && ((received, total) => options.onProgress?.({ received, total })),
  });

  const actual = await digestFile(partFile, sha512 === undefined ? ['sha256'] : ['sha256', 'sha512']);
  const mismatch =
    actual.length !== length
      ? `length ${actual.length}, signed ${length}`
      : actual.digests['sha256'] !== sha256
        ? `sha256 ${actual.digests['sha256']}, signed ${sha256}`
        : sha512 !== undefined && actual.digests['sha512'] !== sha512
          ? `sha512 differs from the signed one`
          : undefined;
  if (mismatch !== undefined) {
    await rm(partFile, { force: true });
    throw new TufClientError(
      'TARGET_VERIFICATION_FAILED',
      `target "${options.targetPath}" does not match its signed metadata (${mismatch}); download discarded`,
    );
  }

  const path = resolve(options.outFile);
  await moveIntoPlace(partFile, path);
  return { path, length, sha256, resumedFrom, bytesDownloaded };
}

/** `<base>/<dir>/<sha256>.<name>`: with consistent snapshots the hash prefixes the last segment only. */
export function targetUrl(targetBaseUrl: string, targetPath: string, sha256: string): string {
  const segments = targetPath.split('/');
  const name = segments.pop() ?? '';
  return [targetBaseUrl, ...segments, `${sha256}.${name}`]
    .map((s, i) => (i === 0 ? s : encodeURIComponent(s)))
    .join('/');
}

function parseServerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TufClientError('INVALID_ARGUMENT', `server URL "${value}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TufClientError('INVALID_ARGUMENT', `server URL "${value}" must be http or https`);
  }
  if (url.search || url.hash) {
    throw new TufClientError('INVALID_ARGUMENT', `server URL "${value}" must not have a query or fragment`);
  }
  return url.toString().replace(/\/+$/, '');
}

/**
 * TUF keeps the newest verified root in `metadata/root.json`; the configured root only seeds it, so that
 * a root rotated since provisioning stays in force.
 */
async function seedTrustedRoot(trustedRootPath: string, metadataDir: string): Promise<void> {
  const cached = join(metadataDir, 'root.json');
  if (await exists(cached)) return;
  let bytes: Buffer;
  try {
    bytes = await readFile(trustedRootPath);
    JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new TufClientError(
      'TRUSTED_ROOT_INVALID',
      `cannot read trusted root ${trustedRootPath}: ${describeError(error)}`,
      { cause: error },
    );
  }
  await mkdir(metadataDir, { recursive: true });
  const temp = `${cached}.${randomUUID()}.tmp`;
  await writeFile(temp, bytes);
  await rename(temp, cached);
}

async function digestFile(
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
 * Renames the verified file to `dest` (atomic on one filesystem). Across filesystems it is copied next to
 * `dest` under a temporary name, flushed and renamed, so `dest` never exists half-written.
 */
async function moveIntoPlace(source: string, dest: string): Promise<void> {
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
async function syncDirectory(dir: string): Promise<void> {
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

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
