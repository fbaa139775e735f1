import { OtterError } from '#otter/errors';

export class ReleaseError extends OtterError {
  constructor(
    code: 'RELEASE_DUPLICATE' | 'RELEASE_INVALID' | 'RELEASE_NOT_FOUND',
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(code, message, details);
  }
}
