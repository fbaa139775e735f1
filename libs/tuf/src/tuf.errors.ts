import { OtterError, type ErrorCode } from '#otter/errors';

export class TufError extends OtterError {
  constructor(code: Extract<ErrorCode, `TUF_${string}`>, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
  }
}
