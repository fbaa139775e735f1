import { OtterError, type ErrorCode } from '#otter/errors';

export class NodeError extends OtterError {
  constructor(
    code: Extract<
      ErrorCode,
      `NODE_${string}` | `ENROLLMENT_${string}` | 'NONCE_INVALID' | 'ATTESTATION_FAILED' | 'UNAUTHENTICATED'
    >,
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(code, message, details);
  }
}
