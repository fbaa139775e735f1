import type { z } from 'zod';
import { ValidationError } from '#otter/errors';

/** Parses a request's query string or throws a 400 naming the first offending parameter and why. */
export function parseQuery<T>(schema: z.ZodType<T, unknown>, query: unknown): T {
  const result = schema.safeParse(query ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const keys = issue && issue.code === 'unrecognized_keys' ? issue.keys : [];
  const field = [...(issue?.path ?? []), ...keys.slice(0, 1)].map(String).join('.') || '(query)';
  const reason = keys.length > 0 ? 'not a known parameter' : (issue?.message ?? 'invalid query');
  throw new ValidationError(`invalid query: ${field}: ${reason}`, { field, reason });
}
