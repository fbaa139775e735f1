export { fetchTarget, targetUrl } from './fetch-target.js';
export type { FetchTargetOptions, FetchTargetResult } from './fetch-target.js';
export { ResumableFetcher } from './resumable-fetcher.js';
export type {
  ResumableDownloadRequest,
  ResumableDownloadResult,
  ResumableFetcherOptions,
} from './resumable-fetcher.js';
export { TufClientError } from './tuf-client-error.js';
export type { TufClientErrorCode } from './tuf-client-error.js';
