import {
  Injectable,
  Logger,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { from, lastValueFrom, type Observable } from 'rxjs';
import { OtterError } from '#otter/errors';
import { runWithAuditContext, type AuditRequestContext } from './audit-context.js';
import type { AuditActor, AuditTarget } from './audit-entry.js';
import { AuditService, type AuditChange } from './audit.service.js';
import { auditedRoute, type AuditedRoute } from './audited.decorator.js';

type AuditedRequest = FastifyRequest & { principal?: AuditActor };

/**
 * Writes the audit row of every `@Audited` route (libs/audit, docs/audit.md). Runs after the guards, so the
 * caller is authenticated and allowed; it must be the first interceptor, so that it also sees a request that a
 * later one refuses (a malformed body) and records it as `failed`.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  private readonly logger = new Logger(AuditInterceptor.name);

  constructor(
    private readonly reflector: Reflector,
    private readonly audit: AuditService,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = auditedRoute(this.reflector, context.getHandler());
    if (!route) return next.handle();
    const request = context.switchToHttp().getRequest<AuditedRequest>();
    const auditContext: AuditRequestContext = {
      actor: request.principal ? actorOf(request.principal) : null,
      requestId: String(request.id),
      source: request.ip,
      recorded: false,
    };
    return from(runWithAuditContext(auditContext, () => this.run(route, request, auditContext, next)));
  }

  private async run(
    route: AuditedRoute,
    request: AuditedRequest,
    auditContext: AuditRequestContext,
    next: CallHandler,
  ): Promise<unknown> {
    const describe = (result: unknown): AuditChange => ({
      action: route.action,
      target: auditTarget(route, request.params, result),
      changes: route.changes?.({ params: paramsOf(request.params), body: request.body, result }),
    });
    try {
      if (route.transaction === 'service') {
        const result = await lastValueFrom(next.handle());
        // The service wrote the row with its change; a path that changed nothing in the database still gets one.
        if (!auditContext.recorded) await this.audit.commitWith(() => Promise.resolve(result), describe);
        return result;
      }
      return await this.audit.commitWith(() => lastValueFrom(next.handle()), describe);
    } catch (error) {
      const code = error instanceof OtterError ? error.code : 'INTERNAL';
      await this.audit
        .recordFailure({ action: route.action, target: auditTarget(route, request.params, undefined) }, code)
        .catch((e: unknown) => this.logger.error({ err: e }, 'could not write a failed audit row'));
      throw error;
    }
  }
}

export function actorOf(principal: AuditActor): AuditActor {
  return { tokenId: principal.tokenId, name: principal.name, role: principal.role };
}

/** The route's target; for a refused or failed call only what the route parameters say. */
export function auditTarget(route: AuditedRoute, params: unknown, result: unknown): AuditTarget {
  const { kind, param, result: field } = route.target;
  if (param !== undefined) return { kind, id: paramsOf(params)[param] ?? null };
  if (field !== undefined && result !== null && typeof result === 'object') {
    const value = (result as Record<string, unknown>)[field];
    return { kind, id: typeof value === 'string' || typeof value === 'number' ? String(value) : null };
  }
  return { kind, id: null };
}

function paramsOf(params: unknown): Record<string, string> {
  return params !== null && typeof params === 'object' ? (params as Record<string, string>) : {};
}
