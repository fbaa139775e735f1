import { OtterError, type ErrorBody } from '#otter/errors';
import type { RouteInput } from './route-input.js';
import { parseInput } from './valid-input.js';

type Example = Omit<ErrorBody, 'statusCode' | 'code'>;

/**
 * Bodies as the exception filter sends them, for the codes every route of a kind shares (their messages are
 * the real ones). A route's own domain codes are shown with the code in words (`NODE_NOT_FOUND` -> "node not
 * found"): the real message names the id or the reason, which an example cannot know.
 */
const SHARED: Record<string, Example> = {
  // Fastify's own answer to a body that does not parse, on a route with no schema of its own to name.
  VALIDATION_FAILED: { message: "Body is not valid JSON but content-type is set to 'application/json'" },
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
export function errorExamples(
  input: RouteInput,
  status: number,
  codes: string[],
): Record<string, { value: ErrorBody }> {
  return Object.fromEntries(
    codes.map((code) => [
      code,
      {
        value: {
          statusCode: status,
          code,
          ...((code === 'VALIDATION_FAILED' ? validationExample(input) : undefined) ??
            SHARED[code] ?? { message: code.toLowerCase().replaceAll('_', ' ') }),
        },
      },
    ]),
  );
}

/**
 * The 400 this route really gives for a wrong input: a wrong value run through the route's own schemas and
 * parseInput, so the example names a field the route reads, in the words the api uses.
 */
function validationExample(input: RouteInput): Example | undefined {
  const attempts: Array<() => unknown> = [];
  if (input.body) {
    const schema = input.body.schema;
    attempts.push(() => parseInput(schema, { unexpected: [] }, 'body'));
    attempts.push(() => parseInput(schema, 42, 'body'));
  }
  if (input.query) {
    const schema = input.query;
    attempts.push(() => parseInput(schema, { unexpected: '1' }, 'query'));
  }
  for (const [name, schema] of Object.entries(input.params)) {
    attempts.push(() => parseInput(schema, 'not-an-id', 'param', name));
  }
  for (const attempt of attempts) {
    try {
      attempt();
    } catch (error) {
      if (error instanceof OtterError) return { message: error.message, details: error.details };
      throw error;
    }
  }
  return undefined;
}
