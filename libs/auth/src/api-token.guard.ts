import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuditService, auditedRoute, auditTarget, type AuditTarget } from '#otter/audit';
import type { Role } from '#otter/contracts';
import { OtterError } from '#otter/errors';
import { bearerToken } from './authorization-header.js';
import type { AuthenticatedRequest, Principal } from './principal.js';
import { REQUIRED_ROLE, roleSatisfies } from './roles.js';
import { TokenService } from './token.service.js';

/**
 * Authenticates `Authorization: Bearer <token>` and checks the role RequireRole asks for (any valid
 * token when the route names no role). Leaves the principal on the request for CurrentPrincipal.
 */
@Injectable()
export class ApiTokenGuard implements CanActivate {
  constructor(
    private readonly tokens: TokenService,
    private readonly reflector: Reflector,
    private readonly audit: AuditService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest & AuthenticatedRequest>();
    const reply = http.getResponse<FastifyReply>();
    const required =
      this.reflector.getAllAndOverride<Role | undefined>(REQUIRED_ROLE, [
        context.getHandler(),
        context.getClass(),
      ]) ?? 'viewer';

    // RequireRole on both a class and a method runs this guard twice; authenticate once per request.
    let principal = request.principal;
    if (!principal) {
      try {
        principal = await this.authenticate(request, reply);
      } catch (error) {
        if (error instanceof OtterError && error.code === 'UNAUTHENTICATED') {
          await this.recordRefusal(context, request, 'refused-401', null);
        }
        throw error;
      }
    }
    request.principal = principal;
    if (!roleSatisfies(principal.role, required)) {
      void reply.header('www-authenticate', 'Bearer realm="otter", error="insufficient_scope"');
      await this.recordRefusal(context, request, 'refused-403', principal);
      throw new OtterError('FORBIDDEN', `this action requires the ${required} role`, {
        requiredRole: required,
      });
    }
    return true;
  }

  /** The audit row of a refused attempt: the route's declared action, or `api.read` for a read-only route. */
  private async recordRefusal(
    context: ExecutionContext,
    request: FastifyRequest,
    outcome: 'refused-401' | 'refused-403',
    principal: Principal | null,
  ): Promise<void> {
    const route = auditedRoute(this.reflector, context.getHandler());
    const target: AuditTarget = route
      ? auditTarget(route, request.params, undefined)
      : { kind: 'route', id: `${request.method} ${request.routeOptions.url ?? request.url}` };
    await this.audit.recordRefusal(outcome, {
      action: route?.action ?? 'api.read',
      target,
      actor: principal && { tokenId: principal.tokenId, name: principal.name, role: principal.role },
      requestId: String(request.id),
      source: request.ip,
    });
  }

  private async authenticate(request: FastifyRequest, reply: FastifyReply): Promise<Principal> {
    const token = bearerToken(request.headers.authorization);
    if (!token) {
      void reply.header('www-authenticate', 'Bearer realm="otter"');
      throw new OtterError('UNAUTHENTICATED', 'a bearer token is required');
    }
    try {
      return await this.tokens.authenticate(token);
    } catch (error) {
      if (error instanceof OtterError && error.code === 'UNAUTHENTICATED') {
        void reply.header('www-authenticate', 'Bearer realm="otter", error="invalid_token"');
      }
      throw error;
    }
  }
}
