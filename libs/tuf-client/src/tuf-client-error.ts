/**
 * What went wrong on the device side of an update. These never become HTTP answers, so they carry their own
 * codes instead of Otter's server error codes.
 */
export type TufClientErrorCode =
  /** A caller-supplied option is unusable (for example a malformed server URL). */
  | 'INVALID_ARGUMENT'
  /** The trusted root or the local metadata cache cannot be used. */
  | 'TRUSTED_ROOT_INVALID'
  /** The repository's metadata could not be fetched or did not verify (signature, version, expiry, ...). */
  | 'METADATA_REFRESH_FAILED'
  /** The signed metadata does not name the requested target. */
  | 'TARGET_NOT_FOUND'
  /** Transport failure while downloading a target (HTTP status, timeout, short body). The partial file is kept. */
  | 'TARGET_DOWNLOAD_FAILED'
  /** The bytes served are not the signed bytes (too long, wrong hash). The partial file is deleted. */
  | 'TARGET_VERIFICATION_FAILED'
  /** A slot cannot take the image: the output is the current slot, a device too small, not a file or device. */
  | 'SLOT_INVALID'
  /**
   * The director's verified target is not one this node may install: for another node or hardware, not
   * signed by the image repository, or signed there with another length or hash.
   */
  | 'ASSIGNMENT_REFUSED'
  /** The director names a release older than the one this node installed last (a rollback). */
  | 'RELEASE_ROLLBACK';

export class TufClientError extends Error {
  constructor(
    readonly code: TufClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An error's message, with the reason fetch keeps in `cause` ("fetch failed: connect ECONNREFUSED ..."). */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
}
