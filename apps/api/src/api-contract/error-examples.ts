import type { ErrorBody } from '#otter/errors';

/**
 * Bodies as the exception filter sends them, for the codes every route of a kind shares (their messages are
 * the real ones). A route's own domain codes are shown with the code in words (`NODE_NOT_FOUND` -> "node not
 * found"): the real message names the id or the reason, which an example cannot know.
 */
const SPECIFIC: Record<string, Omit<ErrorBody, 'statusCode' | 'code'>> = {
  VALIDATION_FAILED: {
    message: 'invalid request body: name: Invalid input: expected string, received number',
    details: { field: 'name', reason: 'Invalid input: expected string, received number', in: 'body' },
  },
  UNSUPPORTED_MEDIA_TYPE: { message: 'the request body must be application/json' },
  UNAUTHENTICATED: { message: 'a bearer token is required' },
  FORBIDDEN: { message: 'this action requires the release-engineer role' },
  RATE_LIMITED: {
    message: 'too many enrollment requests from this address: retry in 30 s',
    details: { retryAfterSeconds: 30, limit: 'address', max: 10 },
  },
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
