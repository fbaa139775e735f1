import type { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from '#otter/errors';
import type { ApiBody } from './api-route.js';
import type { CatalogRoute } from './route-catalog.js';

/** One documented status of a route: its body, or, for an error status, the codes it may carry. */
export interface DocumentedResponse {
  description: string;
  body?: ApiBody;
  /** Error codes: OtterError codes, and INTERNAL (a 500 the filter logs with an errorId). */
  codes?: string[];
}

const JSON_TYPE = 'application/json';

/** Every status a route can answer with, derived from its description, inputs, guards and limits. */
export function routeResponses(route: CatalogRoute): Map<number, DocumentedResponse> {
  const responses = new Map<number, DocumentedResponse>();
  const spec = route.spec;
  const body = spec?.response === undefined ? undefined : asBody(spec.response);
  responses.set(route.successStatus, { description: body?.description ?? spec?.summary ?? 'OK', body });
  for (const [status, other] of Object.entries(spec?.otherResponses ?? {})) {
    responses.set(Number(status), {
      description: other.description,
      body: other.schema || other.mediaType ? other : undefined,
    });
  }
  const byStatus = new Map<number, string[]>();
  for (const code of routeErrors(route)) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  // Any route can fail unexpectedly: the filter answers 500 INTERNAL with an errorId naming the log line.
  byStatus.set(500, [...(byStatus.get(500) ?? []), 'INTERNAL']);
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    responses.set(status, { description: codes.join(', '), codes });
  }
  return responses;
}

/** The error codes a route can answer with: its own, and those every route of its kind can give. */
export function routeErrors(route: CatalogRoute): ErrorCode[] {
  const codes = new Set<ErrorCode>(route.spec?.errors ?? []);
  const { input } = route;
  const validates =
    input.body !== undefined ||
    input.query !== undefined ||
    Object.keys(input.params).length > 0 ||
    Object.keys(input.headers).length > 0;
  if (validates) codes.add('VALIDATION_FAILED');
  // A body is parsed (and refused if it is not JSON, or too large) on any route that may carry one.
  if (route.method !== 'get') {
    codes.add('VALIDATION_FAILED');
    codes.add('UNSUPPORTED_MEDIA_TYPE');
    codes.add('PAYLOAD_TOO_LARGE');
  }
  switch (route.security.kind) {
    case 'management':
      codes.add('UNAUTHENTICATED');
      codes.add('FORBIDDEN');
      break;
    case 'device':
      codes.add('UNAUTHENTICATED');
      break;
    case 'event-stream':
      codes.add('UNAUTHENTICATED');
      codes.add('VALIDATION_FAILED');
      break;
    case 'metrics':
      codes.add('METRICS_UNAUTHORIZED');
      break;
    case 'none':
      break;
  }
  if (route.rateLimited) {
    codes.add('RATE_LIMITED');
    codes.add('RATE_LIMIT_UNAVAILABLE');
  }
  // The request deadline (request-deadline.ts) applies to every route.
  codes.add('REQUEST_TIMEOUT');
  return [...codes];
}

export function asBody(response: z.ZodType | ApiBody): ApiBody {
  return isZod(response) ? { schema: response, mediaType: JSON_TYPE } : response;
}

function isZod(value: unknown): value is z.ZodType {
  return typeof value === 'object' && value !== null && '_zod' in value;
}
