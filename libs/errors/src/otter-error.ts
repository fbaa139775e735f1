/**
 * Every error code Otter can answer with, and the HTTP status it maps to. Domain errors pick a code from
 * here; the exception filter is the only place that turns codes into statuses.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  PAYLOAD_TOO_LARGE: 413,
  // The client closed the connection mid-request: nobody reads this answer, it only ends the request quietly.
  UPLOAD_ABORTED: 400,
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
  // Flood controls (docs/attestation.md, "Floods"): answered with Retry-After when details.retryAfterSeconds is set.
  RATE_LIMITED: 429,
  RATE_LIMIT_UNAVAILABLE: 503,
  REQUEST_TIMEOUT: 408,
  ENROLLMENT_NOT_FOUND: 404,
  ENROLLMENT_EXPIRED: 410,
  ENROLLMENT_PROOF_INVALID: 403,
  ENROLLMENT_TOO_MANY_ATTEMPTS: 429,
  ENROLLMENT_CAPACITY_REACHED: 503,
  NODE_NOT_FOUND: 404,
  NODE_ALREADY_ENROLLED: 409,
  NODE_STATE_INVALID: 409,
  NODE_NOT_ADMITTED: 403,
  NONCE_INVALID: 400,
  ATTESTATION_FAILED: 422,
  // TPM 2.0 attestation (libs/attestation): 400 = the evidence cannot be read, 403 = it was read and refused.
  TPM_PUBLIC_MALFORMED: 400,
  TPM_PUBLIC_UNSUPPORTED: 400,
  TPM_ATTEST_MALFORMED: 400,
  TPM_SIGNATURE_MALFORMED: 400,
  TPM_SIGNATURE_UNSUPPORTED: 400,
  QUOTE_MALFORMED: 400,
  QUOTE_BAD_MAGIC: 400,
  QUOTE_WRONG_TYPE: 400,
  QUOTE_NONCE_MISMATCH: 403,
  QUOTE_SIGNATURE_INVALID: 403,
  QUOTE_SELECTION_MISMATCH: 403,
  QUOTE_PCR_DIGEST_MISMATCH: 403,
  QUOTE_COUNTER_ROLLBACK: 403,
  CERTIFY_MALFORMED: 400,
  CERTIFY_WRONG_TYPE: 400,
  CERTIFY_NONCE_MISMATCH: 403,
  CERTIFY_SIGNATURE_INVALID: 403,
  CERTIFY_NAME_MISMATCH: 403,
  AK_REJECTED: 403,
  DEVICE_KEY_REJECTED: 403,
  CREDENTIAL_INPUT_INVALID: 400,
  CREDENTIAL_EK_UNSUPPORTED: 400,
  EK_CERT_MALFORMED: 400,
  EK_CERT_UNTRUSTED: 403,
  EK_CERT_EXPIRED: 403,
  EK_CERT_KEY_MISMATCH: 403,
  EK_TEMPLATE_MISMATCH: 400,
  PCR_POLICY_INVALID: 400,
  // Delta updates (libs/delta): a patch is untrusted input until its result matches the signed target.
  DELTA_MALFORMED: 422,
  DELTA_SOURCE_MISMATCH: 409,
  DELTA_TARGET_MISMATCH: 422,
  DELTA_LIMIT_EXCEEDED: 413,
  DELTA_BUILD_FAILED: 500,
  // Director repository (libs/director): per-node TUF metadata naming the image a node should run.
  DIRECTOR_NOT_INITIALIZED: 404,
  DIRECTOR_METADATA_NOT_FOUND: 404,
  DIRECTOR_NODE_NOT_FOUND: 404,
  DIRECTOR_NODE_MISMATCH: 403,
  DIRECTOR_ASSIGNMENT_INVALID: 400,
  DIRECTOR_ROOT_REJECTED: 422,
  DIRECTOR_KEY_UNAVAILABLE: 503,
  // Boot environment and A/B slots (libs/boot-env): agent-side, never answered over HTTP today.
  BOOT_ENV_VARIABLE_INVALID: 400,
  BOOT_ENV_CORRUPT: 500,
  BOOT_ENV_UNAVAILABLE: 503,
  BOOT_SLOT_NOT_PROVISIONED: 409,
  BOOT_SLOT_CONFLICT: 409,
  // Rollouts (libs/rollouts).
  ROLLOUT_NOT_FOUND: 404,
  ROLLOUT_INVALID: 400,
  ROLLOUT_CONFLICT: 409,
  ROLLOUT_STATE_INVALID: 409,
  ROLLOUT_NODE_NOT_FOUND: 404,
  ROLLOUT_RELEASE_UNMEASURED: 422,
  // Operations (apps/api/src/operations): /readyz while the database, Redis or the blob store does not answer,
  // and a /metrics scrape without the OTTER_METRICS_TOKEN bearer.
  NOT_READY: 503,
  METRICS_UNAUTHORIZED: 401,
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
