import { z } from 'zod';
import { OtterError, ValidationError } from '#otter/errors';

/** Parses a request body or throws a 400 naming the first offending field and why. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const keys = issue && issue.code === 'unrecognized_keys' ? issue.keys : [];
  const field = [...(issue?.path ?? []), ...keys.slice(0, 1)].map(String).join('.') || '(body)';
  const reason = issue?.message ?? 'invalid request body';
  throw new ValidationError(`invalid request body: ${field}: ${reason}`, { field, reason });
}

/**
 * The API speaks JSON only. The Fastify adapter would also parse form bodies into objects; refusing them
 * keeps one body format to validate and to reason about.
 */
export function requireJson(contentType: string | undefined): void {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new OtterError('UNSUPPORTED_MEDIA_TYPE', 'the request body must be application/json');
  }
}

/** Parses query parameters or throws a 400 naming the first offending parameter and why. */
export function parseQuery<T>(schema: z.ZodType<T>, query: unknown): T {
  const result = schema.safeParse(query ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const keys = issue && issue.code === 'unrecognized_keys' ? issue.keys : [];
  const field = [...(issue?.path ?? []), ...keys.slice(0, 1)].map(String).join('.') || '(query)';
  const reason = issue?.message ?? 'invalid query';
  throw new ValidationError(`invalid query: ${field}: ${reason}`, { field, reason });
}
