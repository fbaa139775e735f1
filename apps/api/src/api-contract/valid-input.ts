import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { OtterError, ValidationError } from '#otter/errors';
import { declareRouteInput } from './route-input.js';

/**
 * The validating parameter decorators: every JSON body, query string and path parameter a route reads goes
 * through one of these, so that a bad request is one 400 shape everywhere and the OpenAPI document describes
 * exactly what is checked. They run after the route's guards and interceptors (Nest resolves parameters
 * last), so an unauthenticated caller still gets 401, never a validation error.
 */

// Nest takes a decorator argument with a `transform` method for a pipe, and a zod schema has one: wrapped.
interface Spec {
  where: 'body' | 'query' | 'param' | 'header';
  schema: z.ZodType;
  name?: string;
  optional?: boolean;
}

const validated = createParamDecorator((spec: Spec, ctx: ExecutionContext): unknown => {
  const request = ctx.switchToHttp().getRequest<FastifyRequest>();
  switch (spec.where) {
    case 'body':
      return parseJsonBody(spec.schema, request, spec.optional ?? false);
    case 'query':
      return parseInput(spec.schema, request.query ?? {}, 'query');
    case 'param':
      return parseInput(
        spec.schema,
        (request.params as Record<string, unknown>)[spec.name!],
        'param',
        spec.name,
      );
    case 'header':
      return parseInput(spec.schema, request.headers[spec.name!], 'header', spec.name);
  }
});

/**
 * The request's JSON body, parsed by `schema`. A body in another media type is 415. `optional`: a request
 * without any body is read as `{}` (the schema then says whether that will do).
 */
export function JsonBody(schema: z.ZodType, options: { optional?: boolean } = {}): ParameterDecorator {
  const optional = options.optional ?? false;
  return (target, key, index) => {
    declareRouteInput(target, key, (input) => (input.body = { schema, optional }));
    validated({ where: 'body', schema, optional })(target, key, index);
  };
}

/** The whole query string, parsed by `schema` (a strict object: an unknown parameter is refused). */
export function ValidQuery(schema: z.ZodType): ParameterDecorator {
  return (target, key, index) => {
    declareRouteInput(target, key, (input) => (input.query = schema));
    validated({ where: 'query', schema })(target, key, index);
  };
}

/** One path parameter, parsed by `schema`. */
export function ValidParam(name: string, schema: z.ZodType): ParameterDecorator {
  return (target, key, index) => {
    declareRouteInput(target, key, (input) => (input.params[name] = schema));
    validated({ where: 'param', schema, name })(target, key, index);
  };
}

/** One request header (lowercase name), parsed by `schema`; absent is `undefined`. */
export function ValidHeader(name: string, schema: z.ZodType): ParameterDecorator {
  return (target, key, index) => {
    declareRouteInput(target, key, (input) => (input.headers[name] = schema));
    validated({ where: 'header', schema, name })(target, key, index);
  };
}

function parseJsonBody(schema: z.ZodType, request: FastifyRequest, optional: boolean): unknown {
  const hasBody = request.body !== undefined && request.body !== null;
  if (!hasBody && optional) return parseInput(schema, {}, 'body');
  // The API speaks JSON only (deferred-body.ts refuses other media types once the caller is let in).
  const mediaType = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new OtterError('UNSUPPORTED_MEDIA_TYPE', 'the request body must be application/json');
  }
  return parseInput(schema, request.body, 'body');
}

const WHERE = {
  body: { label: 'request body', whole: '(body)' },
  query: { label: 'query', whole: '(query)' },
  param: { label: 'path parameter', whole: '(path)' },
  header: { label: 'header', whole: '(header)' },
} as const;

/** Parses `value` or throws a 400 naming the first offending field (the zod issue's path) and why. */
export function parseInput(
  schema: z.ZodType,
  value: unknown,
  where: keyof typeof WHERE,
  name?: string,
): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const keys = issue && issue.code === 'unrecognized_keys' ? issue.keys : [];
  const path = [...(issue?.path ?? []), ...keys.slice(0, 1)].map(String);
  // A query parameter is named as a whole (`kind`, not `kind.1` for the second of a repeated one).
  const field = name ?? (where === 'query' ? path[0] : path.join('.')) ?? WHERE[where].whole;
  const reason =
    keys.length > 0 && where === 'query' ? 'not a known parameter' : (issue?.message ?? 'invalid');
  throw new ValidationError(`invalid ${WHERE[where].label}: ${field || WHERE[where].whole}: ${reason}`, {
    field: field || WHERE[where].whole,
    reason,
    in: where,
  });
}
