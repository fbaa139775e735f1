export { AuthModule } from './auth.module.js';
export { TokenService, BOOTSTRAP_ADMIN_TOKEN_NAME, ADMIN_TOKEN_FILE } from './token.service.js';
export { ApiTokenGuard } from './api-token.guard.js';
export { authorizationCredentials, bearerToken } from './authorization-header.js';
export { RequireRole } from './require-role.decorator.js';
export { CurrentPrincipal } from './current-principal.decorator.js';
export type { Principal } from './principal.js';
export { roleSatisfies, isRole, REQUIRED_ROLE } from './roles.js';
export {
  TOKEN_NAME_MAX_LENGTH,
  TOKEN_NAME_PATTERN,
  validateTokenName,
  validateRole,
} from './token-validation.js';
