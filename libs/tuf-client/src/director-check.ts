import semver from 'semver';
import { DirectorSession, type DirectorListedTarget } from './director-session.js';
import { readInstalledRelease } from './installed-release.js';
import type { ResumableFetcherOptions } from './resumable-fetcher.js';
import { TufClientError } from './tuf-client-error.js';
import { parseServerUrl, TufSession, type SignedTarget } from './tuf-session.js';

export interface DirectorCheckOptions {
  /** Otter server base URL. */
  serverUrl: string;
  /** This node, as its device identity names it. */
  nodeId: string;
  hardwareId: string;
  /**
   * Headers for one GET of `url` as this node: a current device access token (`POST /api/v1/devices/token`)
   * and a DPoP proof signed by the device key.
   */
  authorize: (url: string) => Promise<Record<string, string>>;
  /** The image repository root this device was provisioned with. */
  imageTrustedRootPath: string;
  /** The director root this device was provisioned with. */
  directorTrustedRootPath: string;
  /** Metadata caches of both repositories, partial downloads, and the installed-release record. */
  stateDir: string;
  /** The version running now, if known: a floor besides the recorded installed release. */
  runningVersion?: string;
  fetcher?: ResumableFetcherOptions;
}

/** An image both repositories sign identically, for this node and its hardware. */
export interface DirectorTarget {
  /** As the image repository signs it: hand it to installTarget as `targetPath` and `expectedImage`. */
  image: SignedTarget;
  releaseVersion: string;
  /** The rollout that assigned it (the director's correlation id), or null. */
  correlationId: string | null;
}

export type DirectorDecision =
  /** The director names no image for this node. */
  | { action: 'none' }
  /** The director names the release this node installed last. */
  | { action: 'up-to-date'; target: DirectorTarget }
  /** A newer release, verified by both repositories: install it. */
  | { action: 'install'; target: DirectorTarget };

const IMAGE_PATH = /^images\/([^/]+)\/([^/]+)$/;

/**
 * One poll of Uptane-style full verification. A fresh tuf-js Updater refreshes this node's director
 * metadata (with its access token), another the image repository's; then the director's single target must
 * be for this node and its hardware, signed by the image repository under the same path with the same length
 * and hashes, and name a release no lower than the one installed last. Anything else is refused with a
 * TufClientError (ASSIGNMENT_REFUSED, RELEASE_ROLLBACK, or METADATA_REFRESH_FAILED when either repository's
 * metadata does not verify: a wrong signature, an expired role, a rollback or a freeze).
 */
export async function checkDirectorAssignment(options: DirectorCheckOptions): Promise<DirectorDecision> {
  const serverUrl = parseServerUrl(options.serverUrl);
  const director = await DirectorSession.open({
    serverUrl,
    nodeId: options.nodeId,
    authorize: options.authorize,
    trustedRootPath: options.directorTrustedRootPath,
    stateDir: options.stateDir,
    fetcher: options.fetcher,
  });
  const images = await TufSession.open({
    serverUrl,
    trustedRootPath: options.imageTrustedRootPath,
    stateDir: options.stateDir,
    fetcher: options.fetcher,
  });

  const listed = await director.targets();
  if (listed.length === 0) return { action: 'none' };
  if (listed.length > 1) {
    throw refused(`the director names ${listed.length} targets; a node runs exactly one image`);
  }
  const target = await verifyAgainstImageRepository(listed[0]!, images, options);

  const floor = await installedFloor(options);
  if (floor && semver.lt(target.releaseVersion, floor.version)) {
    throw new TufClientError(
      'RELEASE_ROLLBACK',
      `the director names release ${target.releaseVersion}, older than ${floor.version} installed before; refused`,
    );
  }
  if (floor && semver.eq(target.releaseVersion, floor.version)) {
    if (floor.sha256 !== undefined && floor.sha256 !== target.image.sha256) {
      throw refused(`release ${target.releaseVersion} is signed with another sha256 than the one installed`);
    }
    return { action: 'up-to-date', target };
  }
  return { action: 'install', target };
}

async function verifyAgainstImageRepository(
  named: DirectorListedTarget,
  images: TufSession,
  options: DirectorCheckOptions,
): Promise<DirectorTarget> {
  const { nodeId, hardwareId, releaseVersion, correlationId } = named.custom;
  if (nodeId !== options.nodeId) {
    throw refused(`the director's target is for node ${String(nodeId)}, not this node (${options.nodeId})`);
  }
  if (hardwareId !== options.hardwareId) {
    throw refused(`the director's target is for hardware ${String(hardwareId)}, not ${options.hardwareId}`);
  }
  const path = IMAGE_PATH.exec(named.path);
  if (!path || path[1] !== options.hardwareId) {
    throw refused(`the director's target ${named.path} is not an image for ${options.hardwareId}`);
  }
  if (typeof releaseVersion !== 'string' || semver.valid(releaseVersion) !== releaseVersion) {
    throw refused(`the director's target has no valid release version`);
  }
  if (path[2] !== releaseVersion) {
    throw refused(`the director's target ${named.path} does not name release ${releaseVersion}`);
  }
  if (correlationId !== null && typeof correlationId !== 'string') {
    throw refused(`the director's target has an invalid correlation id`);
  }

  const image = await images.lookup(named.path);
  if (!image) throw refused(`the image repository does not sign ${named.path}`);
  if (named.length !== image.length) {
    throw refused(
      `${named.path}: the director names ${named.length} bytes, the image repository signs ${image.length}`,
    );
  }
  const signedByImages: Record<string, string | undefined> = { sha256: image.sha256, sha512: image.sha512 };
  if (named.hashes['sha256'] === undefined) throw refused(`the director's target has no sha256`);
  for (const [algorithm, digest] of Object.entries(named.hashes)) {
    if (signedByImages[algorithm] !== digest) {
      throw refused(`${named.path}: the director's ${algorithm} differs from the image repository's`);
    }
  }
  // Releases sign what they are for; an image that says otherwise is not this node's.
  const { hardware, version } = image.custom;
  if (
    (hardware !== undefined && hardware !== options.hardwareId) ||
    (version !== undefined && version !== releaseVersion)
  ) {
    throw refused(`${named.path}: the image repository signs it for ${String(hardware)} ${String(version)}`);
  }
  return { image, releaseVersion, correlationId: correlationId as string | null };
}

async function installedFloor(
  options: DirectorCheckOptions,
): Promise<{ version: string; sha256?: string } | undefined> {
  const recorded = await readInstalledRelease(options.stateDir);
  const running =
    options.runningVersion !== undefined && semver.valid(options.runningVersion)
      ? options.runningVersion
      : undefined;
  if (recorded && (!running || semver.gte(recorded.releaseVersion, running))) {
    return { version: recorded.releaseVersion, sha256: recorded.sha256 };
  }
  return running === undefined ? undefined : { version: running };
}

function refused(message: string): TufClientError {
  return new TufClientError('ASSIGNMENT_REFUSED', `${message}; refused`);
}
