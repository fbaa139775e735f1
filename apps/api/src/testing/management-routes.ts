import { GUARDS_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { RequestMethod } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import { ApiTokenGuard } from '#otter/auth';

/** One route of the api as Nest registered it. */
export interface ApiRoute {
  method: string;
  path: string;
  /** Guarded by ApiTokenGuard (a management route), on the method or its controller. */
  management: boolean;
  /** The route handler, to read its metadata. */
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- Nest keeps metadata on the handler function
  handler: Function;
}

/** Every controller route of a running api, read from Nest's own metadata (so a new route cannot be missed). */
export function apiRoutes(app: INestApplication): ApiRoute[] {
  const routes: ApiRoute[] = [];
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as (new (...args: never[]) => unknown) | null;
      if (!controller) continue;
      const prefix = String(Reflect.getMetadata(PATH_METADATA, controller) ?? '');
      const classGuards = (Reflect.getMetadata(GUARDS_METADATA, controller) ?? []) as unknown[];
      const proto = controller.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        const handler = proto[name];
        if (name === 'constructor' || typeof handler !== 'function') continue;
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (method === undefined) continue;
        const guards = [
          ...classGuards,
          ...((Reflect.getMetadata(GUARDS_METADATA, handler) ?? []) as unknown[]),
        ];
        const sub = String(Reflect.getMetadata(PATH_METADATA, handler) ?? '');
        routes.push({
          method: RequestMethod[method],
          path: `/${[prefix, sub].filter((p) => p && p !== '/').join('/')}`.replace(/\/+/g, '/'),
          management: guards.includes(ApiTokenGuard),
          handler: handler as ApiRoute['handler'],
        });
      }
    }
  }
  return routes;
}

/** The management routes that change state: POST, PUT, PATCH and DELETE behind a management token. */
export function stateChangingManagementRoutes(app: INestApplication): ApiRoute[] {
  return apiRoutes(app).filter((r) => r.management && ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method));
}
