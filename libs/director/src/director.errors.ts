import { OtterError, type ErrorCode } from '#otter/errors';
import type { RootFailureError } from '#otter/tuf-signing';

export type DirectorErrorCode = Extract<ErrorCode, `DIRECTOR_${string}`>;

export class DirectorError extends OtterError {
  constructor(code: DirectorErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
  }
}

/** How the shared root and key layer's failures answer for the director repository. */
export const directorError: RootFailureError = (failure, message, details) =>
  new DirectorError(`DIRECTOR_${failure}`, message, details);
