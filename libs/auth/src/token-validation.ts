import { ROLES, type Role } from '#otter/contracts';
import { ValidationError } from '#otter/errors';
import { isRole } from './roles.js';

export const TOKEN_NAME_MAX_LENGTH = 64;
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9 ._-]+$/;

export function validateTokenName(name: unknown): string {
  if (typeof name !== 'string') {
    throw new ValidationError('token name must be a string', { field: 'name', reason: 'not a string' });
  }
  if (name.length < 1 || name.length > TOKEN_NAME_MAX_LENGTH) {
    throw new ValidationError(`token name must be 1 to ${TOKEN_NAME_MAX_LENGTH} characters`, {
      field: 'name',
      reason: `length ${name.length} is outside 1..${TOKEN_NAME_MAX_LENGTH}`,
    });
  }
  if (!TOKEN_NAME_PATTERN.test(name)) {
    throw new ValidationError('token name may only contain letters, digits, space, ".", "_" and "-"', {
      field: 'name',
      reason: 'contains a character outside [A-Za-z0-9 ._-]',
    });
  }
  return name;
}

export function validateRole(role: unknown): Role {
  if (!isRole(role)) {
    throw new ValidationError(`role must be one of ${ROLES.join(', ')}`, {
      field: 'role',
      reason: `not one of ${ROLES.join(', ')}`,
    });
  }
  return role;
}
