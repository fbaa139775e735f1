import { OtterError, type ErrorCode } from '#otter/errors';

/** Every code the attestation library throws; each is also in ERROR_STATUS (libs/errors). */
export type AttestationErrorCode = Extract<
  ErrorCode,
  | `TPM_${string}`
  | `QUOTE_${string}`
  | `CERTIFY_${string}`
  | 'AK_REJECTED'
  | 'DEVICE_KEY_REJECTED'
  | `CREDENTIAL_${string}`
  | `EK_CERT_${string}`
  | 'EK_TEMPLATE_MISMATCH'
  | 'PCR_POLICY_INVALID'
>;

/**
 * The only error this library throws for bad input: a stable `code` for programs and a `reason` for people.
 * Everything it parses comes from a device, so a RangeError or TypeError escaping would be a bug.
 */
export class AttestationError extends OtterError {
  constructor(
    override readonly code: AttestationErrorCode,
    reason: string,
    details?: Record<string, unknown>,
  ) {
    super(code, reason, details);
  }

  get reason(): string {
    return this.message;
  }
}
