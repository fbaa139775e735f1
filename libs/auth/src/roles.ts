import { ROLES, type Role } from '#otter/contracts';

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** True when `held` may do what `required` may: ROLES lists the roles weakest first. */
export function roleSatisfies(held: Role, required: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(required);
}

/** Metadata key RequireRole sets and ApiTokenGuard reads. */
export const REQUIRED_ROLE = Symbol('otter:required-role');
