export { fetchTarget, targetUrl } from './fetch-target.js';
export type { FetchTargetOptions, FetchTargetResult } from './fetch-target.js';
export { findDelta, listDeltaTargets, parseDeltaCustom } from './find-delta.js';
export type { DeltaImage, DeltaMatch, FindDeltaResult } from './find-delta.js';
export { installTarget } from './install-target.js';
export type { InstallPhase, InstallTargetOptions, InstallTargetResult } from './install-target.js';
export { ResumableFetcher } from './resumable-fetcher.js';
export type {
  ResumableDownloadRequest,
  ResumableDownloadResult,
  ResumableFetcherOptions,
} from './resumable-fetcher.js';
export { TufSession } from './tuf-session.js';
export type { SignedTarget, TufSessionOptions, VerifiedDownload } from './tuf-session.js';
export { TufClientError } from './tuf-client-error.js';
export type { TufClientErrorCode } from './tuf-client-error.js';
export { checkDirectorAssignment } from './director-check.js';
export type { DirectorCheckOptions, DirectorDecision, DirectorTarget } from './director-check.js';
export { DirectorSession } from './director-session.js';
export type { DirectorListedTarget, DirectorSessionOptions } from './director-session.js';
export { installedReleaseFile, readInstalledRelease, recordInstalledRelease } from './installed-release.js';
export type { InstalledRelease } from './installed-release.js';
