import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
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
    const principal = request.principal ?? (await this.authenticate(request, reply));
    request.principal = principal;
    if (!roleSatisfies(principal.role, required)) {
      void reply.header('www-authenticate', 'Bearer realm="otter", error="insufficient_scope"');
      throw new OtterError('FORBIDDEN', `this action requires the ${required} role`, {
        requiredRole: required,
      });
    }
    return true;
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
