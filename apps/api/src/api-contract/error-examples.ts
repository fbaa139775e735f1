import type { ErrorBody } from '#otter/errors';

/**
 * Bodies the exception filter really sends for a few codes whose details matter to a client; every other
 * code is shown with its message in words (`NODE_NOT_FOUND` -> "node not found"), which is what the domain
 * errors say in substance.
 */
const SPECIFIC: Record<string, Omit<ErrorBody, 'statusCode' | 'code'>> = {
  VALIDATION_FAILED: {
    message: 'invalid request body: name: Invalid input: expected string, received number',
    details: { field: 'name', reason: 'Invalid input: expected string, received number', in: 'body' },
  },
  UNSUPPORTED_MEDIA_TYPE: { message: 'expected application/json, got text/plain' },
  UNAUTHENTICATED: { message: 'missing or invalid token' },
  FORBIDDEN: { message: 'this action requires the release-engineer role' },
  RATE_LIMITED: { message: 'too many requests from this node', details: { retryAfterSeconds: 30 } },
  INTERNAL: { message: 'internal error', errorId: '5b0f7c4e-2d1a-4f4b-9a63-0c8e2f71d9aa' },
};

/** One example body per error code, keyed by the code, for an error status of the OpenAPI document. */
export function errorExamples(status: number, codes: string[]): Record<string, { value: ErrorBody }> {
  return Object.fromEntries(
    codes.map((code) => [
      code,
      {
        value: {
          statusCode: status,
          code,
          ...(SPECIFIC[code] ?? { message: code.toLowerCase().replaceAll('_', ' ') }),
        },
      },
    ]),
  );
}
