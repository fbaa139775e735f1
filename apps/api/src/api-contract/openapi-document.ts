import { z } from 'zod';
import { createDocument, type ZodOpenApiObject, type ZodOpenApiOperationObject } from 'zod-openapi';
import { errorBodySchema } from '#otter/errors';
import type { ApiBody } from './api-route.js';
import type { CatalogRoute, RouteSecurity } from './route-catalog.js';
import { routeResponses } from './route-responses.js';
import { errorExamples } from './error-examples.js';

const SECURITY_SCHEMES = {
  managementToken: {
    type: 'http',
    scheme: 'bearer',
    description:
      'A management API token (`otter token create`). The role a route needs is listed with it: ' +
      'viewer < release-engineer < admin, each allowed what the ones before it are.',
  },
  deviceToken: {
    type: 'http',
    scheme: 'DPoP',
    description:
      'A device access token from POST /api/v1/devices/token, bound to the TPM-held device key: ' +
      '`Authorization: DPoP <token>` with a `DPoP` proof header (docs/attestation.md).',
  },
  eventTicket: {
    type: 'apiKey',
    in: 'query',
    name: 'ticket',
    description: "A single-use ticket from POST /api/v1/events/tickets, for browsers' EventSource.",
  },
  metricsToken: {
    type: 'http',
    scheme: 'bearer',
    description: 'OTTER_METRICS_TOKEN, when it is set; without it /metrics is open.',
  },
} as const;

/** The OpenAPI 3.1 document of the routes in `routes` (routeCatalog), from their zod schemas. */
export function openApiDocument(routes: CatalogRoute[], version: string): ReturnType<typeof createDocument> {
  const paths: NonNullable<ZodOpenApiObject['paths']> = {};
  for (const route of routes) {
    (paths[route.path] ??= {})[route.method] = operation(route);
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Otter API',
      version,
      description:
        'Secure OTA updates. Errors share one body (Error) whose `code` is an OtterError code; ' +
        'see docs/api.md. Generated from the zod schemas the api validates with.',
    },
    paths,
    components: { securitySchemes: SECURITY_SCHEMES },
  });
}

function operation(route: CatalogRoute): ZodOpenApiOperationObject {
  const spec = route.spec;
  if (!spec) throw new Error(`${route.name} (${route.method.toUpperCase()} ${route.path}) has no @ApiRoute`);
  const op: ZodOpenApiOperationObject = {
    operationId: operationId(route),
    summary: spec.summary,
    ...(spec.description ? { description: spec.description } : {}),
    tags: [tagOf(route.path)],
    security: security(route.security),
    requestParams: requestParams(route),
    responses: {},
  };
  const body = route.input.body;
  if (body) {
    op.requestBody = {
      required: !body.optional,
      content: { 'application/json': { schema: body.schema } },
    };
  } else if (spec.requestBody) {
    op.requestBody = {
      required: spec.requestBody.required ?? true,
      content: content(spec.requestBody),
    };
  }
  for (const [status, response] of routeResponses(route)) {
    op.responses[String(status) as `${1 | 2 | 3 | 4 | 5}${string}`] = response.codes
      ? {
          description: response.description,
          content: {
            'application/json': {
              schema: errorBodySchema,
              examples: errorExamples(route.input, status, response.codes),
            },
          },
        }
      : {
          description: response.description,
          ...(response.body ? { content: content(response.body) } : {}),
        };
  }
  return op;
}

function content(body: ApiBody): Record<string, { schema: z.ZodType; example?: unknown }> {
  return {
    [body.mediaType ?? 'application/json']: {
      schema: body.schema ?? z.string(),
      ...(body.example === undefined ? {} : { example: body.example }),
    },
  };
}

function requestParams(route: CatalogRoute): ZodOpenApiOperationObject['requestParams'] {
  const pathNames = [...route.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  const path = Object.fromEntries(pathNames.map((n) => [n, route.input.params[n] ?? z.string()]));
  const params: NonNullable<ZodOpenApiOperationObject['requestParams']> = {};
  if (pathNames.length > 0) params.path = z.object(path);
  if (route.input.query) params.query = route.input.query as z.ZodObject;
  if (Object.keys(route.input.headers).length > 0) params.header = z.object(route.input.headers);
  return params;
}

function security(s: RouteSecurity): Array<Record<string, string[]>> {
  switch (s.kind) {
    case 'management':
      // OpenAPI 3.1: for schemes other than OAuth the array lists the roles the route requires.
      return [{ managementToken: [s.role] }];
    case 'device':
      return [{ deviceToken: [] }];
    case 'event-stream':
      return [{ managementToken: ['viewer'] }, { eventTicket: [] }];
    case 'metrics':
      return [{ metricsToken: [] }, {}];
    case 'none':
      return [];
  }
}

function tagOf(path: string): string {
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'api' && parts[1] === 'v1') return parts[2] === 'savings' ? 'deltas' : parts[2]!;
  if (parts[0] === 'tuf') return `tuf-${parts[1]}`;
  if (parts[0] === 'api') return 'documentation';
  return 'operations';
}

/** `post /api/v1/rollouts/{id}/pause` -> `postRolloutsIdPause`: stable, so generated clients keep their names. */
function operationId(route: CatalogRoute): string {
  const words = route.path
    .replace(/^\/api\/v1\//, '/')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  return route.method + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}
