import { OtterError, type ErrorCode } from '#otter/errors';
import type { RootFailureError } from '#otter/tuf-signing';

export class TufError extends OtterError {
  constructor(code: Extract<ErrorCode, `TUF_${string}`>, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
  }
}

/** How the shared root and key layer's failures answer for the image repository. */
export const tufError: RootFailureError = (failure, message, details) =>
  new TufError(`TUF_${failure}`, message, details);
