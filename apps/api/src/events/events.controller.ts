import { Controller, Get, Headers, HttpCode, Post, Query, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { Audited, resultFields } from '#otter/audit';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import { eventFilterQuerySchema, type EventTicketDto } from '#otter/contracts';
import { EventTickets } from '#otter/events';
import { EventStreamGuard } from './event-stream.guard.js';
import { EventStreamService } from './event-stream.service.js';
import { parseEventQuery } from './event-requests.js';

@Controller('api/v1/events')
export class EventsController {
  constructor(
    private readonly streams: EventStreamService,
    private readonly tickets: EventTickets,
  ) {}

  /** Server-sent events; see docs/events.md. */
  @Get()
  @UseGuards(EventStreamGuard)
  async stream(
    @Query() query: unknown,
    @Headers('last-event-id') lastEventIdHeader: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const request = parseEventQuery(eventFilterQuerySchema, query, lastEventIdHeader);
    await this.streams.serve(request, () => {
      reply.hijack();
      return reply.raw;
    });
  }

  /** A single-use ticket for `?ticket=`, carrying the caller's identity and role. */
  @Post('tickets')
  @HttpCode(201)
  @RequireRole('viewer')
  // A credential, if a short one: recorded like a token's creation (never the ticket itself).
  @Audited('events.ticket.issued', { target: { kind: 'token' }, changes: resultFields('expiresAt') })
  issueTicket(@CurrentPrincipal() who: Principal): Promise<EventTicketDto> {
    return this.tickets.issue(who);
  }
}
