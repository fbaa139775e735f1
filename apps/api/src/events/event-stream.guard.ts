import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiTokenGuard, type Principal } from '#otter/auth';
import { OtterError } from '#otter/errors';
import { EventTickets } from '#otter/events';

/**
 * GET /api/v1/events: a management token (any role: viewer and above) by `Authorization: Bearer`, or a
 * single-use `?ticket=` from POST /api/v1/events/tickets for browsers, whose EventSource sends no header. A
 * ticket is redeemed (and so used up) here, before anything else about the request is looked at.
 */
@Injectable()
export class EventStreamGuard implements CanActivate {
  constructor(
    private readonly tickets: EventTickets,
    private readonly tokens: ApiTokenGuard,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<FastifyRequest & { principal?: Principal }>();
    const ticket = (request.query as Record<string, unknown> | undefined)?.ticket;
    if (ticket === undefined) return this.tokens.canActivate(context);
    if (typeof ticket !== 'string' || request.headers.authorization !== undefined) {
      throw new OtterError('VALIDATION_FAILED', 'ticket: one ticket, and no Authorization header with it');
    }
    const holder = await this.tickets.redeem(ticket);
    if (!holder) {
      void context
        .switchToHttp()
        .getResponse<FastifyReply>()
        .header('www-authenticate', 'Bearer realm="otter"');
      throw new OtterError('UNAUTHENTICATED', 'unknown, used or expired ticket: ask for a new one');
    }
    request.principal = holder;
    return true;
  }
}
