import { randomUUID } from 'node:crypto';
import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Metadata, MetadataKind, type Targets } from '@tufjs/models';
import { Updater } from 'tuf-js';
import { ResumableFetcher, type ResumableFetcherOptions } from './resumable-fetcher.js';
import { digestFile } from './slot-io.js';
import { describeError, TufClientError } from './tuf-client-error.js';

export interface TufSessionOptions {
  /** Otter server base URL, e.g. `https://otter.example.com`. */
  serverUrl: string;
  /** The root.json this device trusts initially; copied into the state dir once and rotated there by TUF. */
  trustedRootPath: string;
  /** Holds the TUF metadata cache (`metadata/`) and partial downloads (`downloads/<sha256>.part`). */
  stateDir: string;
  /** Transport settings (timeouts, extra headers). */
  fetcher?: ResumableFetcherOptions;
}

/** A target as the verified metadata signs it: what a download must match. */
export interface SignedTarget {
  path: string;
  length: number;
  /** Lowercase hex. */
  sha256: string;
  /** Lowercase hex, when the repository signs one. */
  sha512?: string;
  /** The target's `custom` object (empty when it has none). */
  custom: Record<string, unknown>;
}

export interface VerifiedDownload {
  /** The complete file, verified against the signed length and hashes. The caller moves or deletes it. */
  partFile: string;
  /** Offset the download continued from (0 when it started from scratch or started over). */
  resumedFrom: number;
  /** Bytes received over the network in this call. */
  bytesDownloaded: number;
}

const TUF_PREFIX = '/tuf/image';
const HEX_SHA256 = /^[0-9a-f]{64}$/;
const HEX_SHA512 = /^[0-9a-f]{128}$/;

/**
 * One verified view of the image repository: a fresh tuf-js Updater that has refreshed once (an Updater is
 * single-use), and the verified, resumable downloads of targets it signs. Every lookup goes through
 * tuf-js's own delegation walk.
 */
export class TufSession {
  private constructor(
    readonly serverUrl: string,
    readonly metadataDir: string,
    readonly downloadsDir: string,
    private readonly updater: Updater,
    private readonly fetcher: ResumableFetcher,
    private readonly targetBaseUrl: string,
  ) {}

  /** Seeds the trusted root if the state dir has none, then refreshes timestamp, snapshot and targets. */
  static async open(options: TufSessionOptions): Promise<TufSession> {
    const serverUrl = parseServerUrl(options.serverUrl);
    const stateDir = resolve(options.stateDir);
    const metadataDir = join(stateDir, 'metadata');
    await seedTrustedRoot(options.trustedRootPath, metadataDir);

    const fetcher = new ResumableFetcher(options.fetcher);
    const metadataBaseUrl = `${serverUrl}${TUF_PREFIX}/metadata`;
    const targetBaseUrl = `${serverUrl}${TUF_PREFIX}/targets`;
    let updater: Updater;
    try {
      updater = new Updater({ metadataDir, metadataBaseUrl, targetBaseUrl, fetcher });
    } catch (error) {
      throw new TufClientError(
        'TRUSTED_ROOT_INVALID',
        `cannot load ${join(metadataDir, 'root.json')}: ${describeError(error)}`,
        { cause: error },
      );
    }
    try {
      await updater.refresh();
    } catch (error) {
      throw refreshFailed(metadataBaseUrl, error);
    }
    return new TufSession(
      serverUrl,
      metadataDir,
      join(stateDir, 'downloads'),
      updater,
      fetcher,
      targetBaseUrl,
    );
  }

  /**
   * The signed info of `targetPath`, walking delegations (and fetching and verifying delegated metadata on
   * the way), or undefined when the repository does not sign that path.
   */
  async lookup(targetPath: string): Promise<SignedTarget | undefined> {
    let info: Awaited<ReturnType<Updater['getTargetInfo']>>;
    try {
      info = await this.updater.getTargetInfo(targetPath);
    } catch (error) {
      throw refreshFailed(`${this.serverUrl}${TUF_PREFIX}/metadata`, error);
    }
    if (!info) return undefined;
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
        `target "${targetPath}": signed hashes need a hex sha256 (and a hex sha512 if any)`,
      );
    }
    return {
      path: targetPath,
      length: info.length,
      sha256,
      ...(sha512 !== undefined && { sha512 }),
      custom: info.custom,
    };
  }

  /** Like lookup, but a target the repository does not sign is an error. */
  async require(targetPath: string): Promise<SignedTarget> {
    const target = await this.lookup(targetPath);
    if (!target) {
      throw new TufClientError(
        'TARGET_NOT_FOUND',
        `target "${targetPath}" is not in the signed metadata of ${this.serverUrl}`,
      );
    }
    return target;
  }

  /** Where the download of `target` accumulates; the name is its signed sha256, so a resume never mixes targets. */
  partFileFor(target: SignedTarget): string {
    return join(this.downloadsDir, `${target.sha256}.part`);
  }

  /**
   * Downloads `target` into its part file, resuming an earlier partial download, and checks the complete
   * file against the signed length and every signed hash. Bytes that do not match are deleted.
   */
  async download(
    target: SignedTarget,
    onProgress?: (received: number, total: number) => void,
  ): Promise<VerifiedDownload> {
    await mkdir(this.downloadsDir, { recursive: true });
    const partFile = this.partFileFor(target);
    const { resumedFrom, bytesDownloaded } = await this.fetcher.downloadResumable({
      url: targetUrl(this.targetBaseUrl, target.path, target.sha256),
      partFile,
      length: target.length,
      onProgress,
    });

    const actual = await digestFile(
      partFile,
      target.sha512 === undefined ? ['sha256'] : ['sha256', 'sha512'],
    );
    const mismatch =
      actual.length !== target.length
        ? `length ${actual.length}, signed ${target.length}`
        : actual.digests['sha256'] !== target.sha256
          ? `sha256 ${actual.digests['sha256']}, signed ${target.sha256}`
          : target.sha512 !== undefined && actual.digests['sha512'] !== target.sha512
            ? `sha512 differs from the signed one`
            : undefined;
    if (mismatch !== undefined) {
      await rm(partFile, { force: true });
      throw new TufClientError(
        'TARGET_VERIFICATION_FAILED',
        `target "${target.path}" does not match its signed metadata (${mismatch}); download discarded`,
      );
    }
    return { partFile, resumedFrom, bytesDownloaded };
  }

  /**
   * A targets role's metadata as tuf-js last persisted it in the metadata dir, or undefined when there is
   * none or it does not parse. tuf-js writes a role there only after verifying it, but a file may be from an
   * earlier run: use what it lists as hints only, and confirm any target with lookup().
   */
  async readPersistedRole(role: string): Promise<Metadata<Targets> | undefined> {
    try {
      // tuf-js's own file naming (Updater.persistMetadata).
      const text = await readFile(join(this.metadataDir, `${encodeURIComponent(role)}.json`), 'utf8');
      return Metadata.fromJSON(
        MetadataKind.Targets,
        JSON.parse(text) as Parameters<typeof Metadata.fromJSON>[1],
      );
    } catch {
      return undefined;
    }
  }
}

/** `<base>/<dir>/<sha256>.<name>`: with consistent snapshots the hash prefixes the last segment only. */
export function targetUrl(targetBaseUrl: string, targetPath: string, sha256: string): string {
  const segments = targetPath.split('/');
  const name = segments.pop() ?? '';
  return [targetBaseUrl, ...segments, `${sha256}.${name}`]
    .map((s, i) => (i === 0 ? s : encodeURIComponent(s)))
    .join('/');
}

export function refreshFailed(metadataBaseUrl: string, error: unknown): TufClientError {
  return new TufClientError(
    'METADATA_REFRESH_FAILED',
    `refreshing TUF metadata from ${metadataBaseUrl} failed: ${describeError(error)}`,
    { cause: error },
  );
}

export function parseServerUrl(value: string): string {
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
export async function seedTrustedRoot(trustedRootPath: string, metadataDir: string): Promise<void> {
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

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
