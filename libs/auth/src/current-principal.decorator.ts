import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { OtterError } from '#otter/errors';
import type { AuthenticatedRequest, Principal } from './principal.js';

/**
 * The caller ApiTokenGuard authenticated. On a route without the guard there is no principal, and the
 * request fails as unauthenticated rather than running without one.
 */
export const CurrentPrincipal = createParamDecorator(
  (_data: unknown, context: ExecutionContext): Principal => {
    const principal = context.switchToHttp().getRequest<AuthenticatedRequest>().principal;
    if (!principal) throw new OtterError('UNAUTHENTICATED', 'this route has no authenticated principal');
    return principal;
  },
);
