import 'reflect-metadata';
import type { z } from 'zod';

/**
 * What a route reads from its request, as the validating parameter decorators (valid-input.ts) declare it.
 * The same declaration validates the request and describes it in the OpenAPI document (openapi-document.ts).
 */
export interface RouteInput {
  body?: { schema: z.ZodType; optional: boolean };
  query?: z.ZodType;
  params: Record<string, z.ZodType>;
  headers: Record<string, z.ZodType>;
}

const ROUTE_INPUT = Symbol('otter.routeInput');

export function routeInputOf(handler: object): RouteInput {
  return (Reflect.getMetadata(ROUTE_INPUT, handler) as RouteInput | undefined) ?? { params: {}, headers: {} };
}

/** Records part of a handler's input; called by the parameter decorators when the class is defined. */
export function declareRouteInput(
  target: object,
  key: string | symbol | undefined,
  add: (input: RouteInput) => void,
): void {
  if (key === undefined) throw new Error('validating parameter decorators go on route handlers');
  const handler = (target as Record<string | symbol, object>)[key]!;
  const input = routeInputOf(handler);
  const copy = { ...input, params: { ...input.params }, headers: { ...input.headers } };
  add(copy);
  Reflect.defineMetadata(ROUTE_INPUT, copy, handler);
}
