import { SetMetadata } from '@nestjs/common';
import type { z } from 'zod';
import type { ErrorCode } from '#otter/errors';

/** A response body: a zod schema for JSON, or another media type described in words (and an optional schema). */
export interface ApiBody {
  schema?: z.ZodType;
  /** Default application/json. */
  mediaType?: string;
  description?: string;
  example?: unknown;
}

/**
 * What a route answers, for the OpenAPI document and the response-conformance check of the test kit. The
 * request side is declared by the validating parameter decorators (valid-input.ts), the security by the
 * route's guards (RequireRole, DeviceAuthGuard, ...) and the success status by @HttpCode: nothing here
 * repeats what the route already says.
 */
export interface ApiRouteSpec {
  summary: string;
  description?: string;
  /** The success answer's body; none for a route that answers without one (204, or 202 with no body). */
  response?: z.ZodType | ApiBody;
  /** Other successful statuses (206, 304, ...), each with its body if it has one. */
  otherResponses?: Record<number, ApiBody & { description: string }>;
  /**
   * The domain error codes the route can answer with. Validation (400), media type (415), body size (413),
   * authentication (401, 403) and rate limits (429) follow from the route's inputs, guards and limits.
   */
  errors?: ErrorCode[];
  /** A request body the route reads itself (multipart uploads): validated by the route, described here. */
  requestBody?: ApiBody & { required?: boolean };
}

export const API_ROUTE = Symbol('otter.apiRoute');

/** Describes a route in GET /api/openapi.json; every route has one (a test fails when one is missing). */
export const ApiRoute = (spec: ApiRouteSpec): MethodDecorator => SetMetadata(API_ROUTE, spec);
