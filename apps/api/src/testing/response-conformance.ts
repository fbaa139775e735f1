import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ModulesContainer } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { errorBodySchema } from '#otter/errors';
import { openApiPath, routeCatalog, type CatalogRoute } from '../api-contract/route-catalog.js';
import { routeResponses, type DocumentedResponse } from '../api-contract/route-responses.js';

/**
 * Checks every answer a test api gives against what GET /api/openapi.json documents for its route: a status
 * the route does not document, an error code it does not list, or a JSON body its schema refuses is a
 * violation. The harness fails the test file (at close) when there was one. Answers the route wrote itself
 * (hijacked streams) are not seen; bodies are checked only when they are JSON text.
 */
export interface ResponseConformance {
  /** Every route Fastify registered, as `GET /api/v1/nodes/{id}` (HEAD routes left out). */
  readonly registered: string[];
  readonly violations: string[];
  /** How many answers were checked. */
  readonly checked: number;
}

export function checkResponses(app: NestFastifyApplication): ResponseConformance {
  const fastify = app.getHttpAdapter().getInstance() as FastifyInstance;
  const state = { registered: [] as string[], violations: [] as string[], checked: 0 };
  let byRoute: Map<string, { route: CatalogRoute; responses: Map<number, DocumentedResponse> }> | undefined;
  const documented = () =>
    (byRoute ??= new Map(
      routeCatalog(app.get(ModulesContainer)).map((route) => [
        `${route.method.toUpperCase()} ${route.path}`,
        { route, responses: routeResponses(route) },
      ]),
    ));

  fastify.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD') state.registered.push(`${method} ${openApiPath(route.url)}`);
    }
  });
  fastify.addHook('onSend', (request, reply, payload, done) => {
    const url = request.routeOptions.url;
    // No route: Fastify's own 404 for an unknown path, which no route documents.
    if (url !== undefined && request.method !== 'HEAD') {
      const key = `${request.method} ${openApiPath(url)}`;
      const problem = conformanceProblem(documented().get(key), reply.statusCode, payload);
      state.checked += 1;
      if (problem) state.violations.push(`${key} -> ${reply.statusCode}: ${problem}`);
    }
    done(null, payload);
  });
  return state;
}

/** Why an answer does not match its route's documented responses, or undefined when it does. */
export function conformanceProblem(
  entry: { route: CatalogRoute; responses: Map<number, DocumentedResponse> } | undefined,
  status: number,
  payload: unknown,
): string | undefined {
  if (!entry) return 'the route is not in the document';
  const documented = entry.responses.get(status);
  if (!documented) return `status not documented (documented: ${[...entry.responses.keys()].join(', ')})`;
  const text =
    typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString() : undefined;
  if (documented.codes) {
    const body = errorBodySchema.safeParse(parse(text));
    if (!body.success) return `not the error body: ${body.error.message}`;
    if (!(documented.codes as string[]).includes(body.data.code))
      return `error code ${body.data.code} not documented (documented: ${documented.codes.join(', ')})`;
    return undefined;
  }
  const schema = documented.body?.schema;
  const json = (documented.body?.mediaType ?? 'application/json').startsWith('application/json');
  if (!schema || !json || text === undefined) return undefined;
  const body = schema.safeParse(parse(text));
  return body.success ? undefined : `body does not match its schema: ${body.error.message.slice(0, 2000)}`;
}

function parse(text: string | undefined): unknown {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return text;
  }
}
