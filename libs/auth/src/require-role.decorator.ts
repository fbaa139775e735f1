import { applyDecorators, SetMetadata, UseGuards } from '@nestjs/common';
import type { Role } from '#otter/contracts';
import { ApiTokenGuard } from './api-token.guard.js';
import { REQUIRED_ROLE } from './roles.js';

/**
 * Requires a valid API token whose role is at least `role` (viewer < release-engineer < admin). It also
 * installs ApiTokenGuard, so the metadata can never be present without the check that enforces it. On a
 * controller it covers every route; on a method it overrides the controller's role for that route.
 */
export function RequireRole(role: Role): ClassDecorator & MethodDecorator {
  return applyDecorators(SetMetadata(REQUIRED_ROLE, role), UseGuards(ApiTokenGuard));
}
