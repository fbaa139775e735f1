/**
 * Every error code Otter can answer with, and the HTTP status it maps to. Domain errors pick a code from
 * here; the exception filter is the only place that turns codes into statuses.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  RELEASE_DUPLICATE: 409,
  RELEASE_NOT_FOUND: 404,
  RELEASE_INVALID: 400,
  TUF_METADATA_NOT_FOUND: 404,
  TUF_TARGET_NOT_FOUND: 404,
  TUF_TARGET_INVALID: 400,
  TUF_ROOT_REJECTED: 422,
  TUF_KEY_UNAVAILABLE: 503,
  TUF_CONFLICT: 409,
  TUF_NOT_INITIALIZED: 503,
  BLOB_NOT_FOUND: 404,
  RANGE_NOT_SATISFIABLE: 416,
  BLOB_HASH_MISMATCH: 400,
  TOKEN_INVALID: 400,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class OtterError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export class ValidationError extends OtterError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('VALIDATION_FAILED', message, details);
  }
}
