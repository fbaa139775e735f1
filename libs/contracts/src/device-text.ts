import { z } from 'zod';

/**
 * Free text a device sets and operators read later (report events and details, update details, inventory):
 * at most `max` characters, refused rather than cut when longer, and never a NUL, which PostgreSQL cannot
 * store. Other control characters are kept as sent; the CLI escapes them where it prints them.
 */
export function deviceText(max: number): z.ZodString {
  return z
    .string()
    .max(max, `at most ${max} characters`)
    .regex(/^[^\0]*$/, 'must not contain a NUL character');
}
