import { SetMetadata } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import type { AuditAction, AuditTargetKind } from '#otter/contracts';

export const AUDITED = Symbol('otter.audited');

/** What a successful call changed, from its route parameters, its (validated) body and its answer. */
export type AuditChanges = (call: {
  params: Record<string, string>;
  body: unknown;
  result: unknown;
}) => Record<string, unknown>;

export interface AuditedRoute {
  action: AuditAction;
  /** The target's id is a route parameter (`param`) or a field of the answer (`result`); neither: no id. */
  target: { kind: AuditTargetKind; param?: string; result?: string };
  changes?: AuditChanges;
  /**
   * `handler` (default): the whole handler runs in one transaction with its row. `service`: the service writes
   * the row itself with AuditService.commitWith around its database write, because the handler does work
   * that must not hold a transaction open (a release upload streams gigabytes to the blob store first).
   */
  transaction?: 'handler' | 'service';
}

/**
 * Declares a state-changing management route's audit action: AuditInterceptor writes its row (`ok` in the
 * change's transaction, `failed` after a rollback), and ApiTokenGuard names it in refused rows. Every
 * POST/PUT/PATCH/DELETE management route carries one; a test enumerates the routes to make sure.
 */
export function Audited(action: AuditAction, route: Omit<AuditedRoute, 'action'>): MethodDecorator {
  return SetMetadata(AUDITED, { action, ...route } satisfies AuditedRoute);
}

// Nest's Reflector reads metadata from a handler function (the controller method).
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export function auditedRoute(reflector: Reflector, handler: Function): AuditedRoute | undefined {
  return reflector.get<AuditedRoute | undefined>(AUDITED, handler);
}

/** Changes as the named fields of the answer (never a secret: name only fields safe to keep for ever). */
export function resultFields(...fields: string[]): AuditChanges {
  return ({ result }) => pick(result, fields);
}

/** Changes as the named fields of the request body (validated by then: the call succeeded). */
export function bodyFields(...fields: string[]): AuditChanges {
  return ({ body }) => pick(body, fields);
}

function pick(value: unknown, fields: string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object') return {};
  const source = value as Record<string, unknown>;
  return Object.fromEntries(fields.filter((f) => source[f] !== undefined).map((f) => [f, source[f]]));
}
