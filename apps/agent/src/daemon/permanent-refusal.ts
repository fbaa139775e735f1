import { ApiError } from '#otter/api-client';

/**
 * 4xx answers that a later retry of the same request can change: a token to renew (401), a node that may be
 * approved or let out of quarantine (403), and the server asking to slow down (408, 425, 429).
 */
const RETRYABLE_CLIENT_STATUSES = new Set([401, 403, 408, 425, 429]);

/** Otter refused the request for what it says (bad field, unknown release, too large): sending it again cannot help. */
export function isPermanentRefusal(error: unknown): boolean {
  return (
    error instanceof ApiError &&
    error.status >= 400 &&
    error.status < 500 &&
    !RETRYABLE_CLIENT_STATUSES.has(error.status)
  );
}
