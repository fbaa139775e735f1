import { RequestMethod, type Type } from '@nestjs/common';
import {
  GUARDS_METADATA,
  HTTP_CODE_METADATA,
  METHOD_METADATA,
  PATH_METADATA,
} from '@nestjs/common/constants.js';
import { ModulesContainer } from '@nestjs/core';
import { FASTIFY_ROUTE_CONFIG_METADATA } from '@nestjs/platform-fastify/constants.js';
import { REQUIRED_ROLE } from '#otter/auth';
import type { Role } from '#otter/contracts';
import { API_ROUTE, type ApiRouteSpec } from './api-route.js';
import { PLAIN_ROUTES } from './plain-routes.js';
import { routeInputOf, type RouteInput } from './route-input.js';

/** Who may call a route, as its guards decide. */
export type RouteSecurity =
  | { kind: 'management'; role: Role }
  | { kind: 'device' }
  | { kind: 'event-stream' }
  | { kind: 'metrics' }
  | { kind: 'none' };

/** One route as the application registers it, with everything the document and the conformance check need. */
export interface CatalogRoute {
  method: 'get' | 'post' | 'put' | 'delete' | 'patch';
  /** OpenAPI form: `/api/v1/nodes/{id}`. */
  path: string;
  spec: ApiRouteSpec | undefined;
  input: RouteInput;
  security: RouteSecurity;
  successStatus: number;
  rateLimited: boolean;
  /** `Controller.handler`, for messages. */
  name: string;
}

const METHODS: Partial<Record<RequestMethod, CatalogRoute['method']>> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.DELETE]: 'delete',
  [RequestMethod.PATCH]: 'patch',
};

/** Guards other than RequireRole's, by class name: what each asks of the caller. */
const GUARD_SECURITY: Record<string, RouteSecurity> = {
  DeviceAuthGuard: { kind: 'device' },
  EventStreamGuard: { kind: 'event-stream' },
  MetricsScrapeGuard: { kind: 'metrics' },
};

/** Every route of the running application: its controllers' handlers and the plain Fastify routes. */
export function routeCatalog(modules: ModulesContainer): CatalogRoute[] {
  const routes: CatalogRoute[] = [];
  for (const module of modules.values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as Type | null;
      if (controller) routes.push(...controllerRoutes(controller));
    }
  }
  routes.push(...PLAIN_ROUTES);
  return routes.sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
}

function controllerRoutes(controller: Type): CatalogRoute[] {
  const base = (Reflect.getMetadata(PATH_METADATA, controller) as string | undefined) ?? '';
  const prototype = controller.prototype as Record<string, unknown>;
  const routes: CatalogRoute[] = [];
  for (const key of Object.getOwnPropertyNames(prototype)) {
    const handler = prototype[key];
    if (key === 'constructor' || typeof handler !== 'function') continue;
    const requestMethod = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
    const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
    if (requestMethod === undefined || sub === undefined) continue;
    const method = METHODS[requestMethod];
    if (!method) throw new Error(`${controller.name}.${key}: unsupported method ${requestMethod}`);
    const httpCode = Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined;
    const routeConfig = Reflect.getMetadata(FASTIFY_ROUTE_CONFIG_METADATA, handler) as
      { deviceRateLimit?: string } | undefined;
    routes.push({
      method,
      path: openApiPath(`/${base}/${sub}`),
      spec: Reflect.getMetadata(API_ROUTE, handler) as ApiRouteSpec | undefined,
      input: routeInputOf(handler),
      security: securityOf(controller, handler),
      successStatus: httpCode ?? (method === 'post' ? 201 : 200),
      rateLimited: routeConfig?.deviceRateLimit !== undefined,
      name: `${controller.name}.${key}`,
    });
  }
  return routes;
}

function securityOf(controller: Type, handler: object): RouteSecurity {
  const role = (Reflect.getMetadata(REQUIRED_ROLE, handler) ??
    Reflect.getMetadata(REQUIRED_ROLE, controller)) as Role | undefined;
  if (role) return { kind: 'management', role };
  const guards = [
    ...((Reflect.getMetadata(GUARDS_METADATA, controller) as Array<{ name: string }> | undefined) ?? []),
    ...((Reflect.getMetadata(GUARDS_METADATA, handler) as Array<{ name: string }> | undefined) ?? []),
  ];
  for (const guard of guards) {
    const security = GUARD_SECURITY[guard.name];
    if (security) return security;
  }
  if (guards.length > 0) throw new Error(`unknown guards ${guards.map((g) => g.name).join(', ')}`);
  return { kind: 'none' };
}

/** `/api/v1//nodes/:id/` -> `/api/v1/nodes/{id}`; a trailing `*` becomes `{path}`. */
export function openApiPath(nestPath: string): string {
  const path = `/${nestPath.split('/').filter(Boolean).join('/')}`;
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\/\*$/, '/{path}');
}
