import { OtterError, type ErrorCode } from '#otter/errors';

export type DirectorErrorCode = Extract<ErrorCode, `DIRECTOR_${string}`>;

export class DirectorError extends OtterError {
  constructor(code: DirectorErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
  }
}
