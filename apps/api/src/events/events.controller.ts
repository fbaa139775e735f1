import { Controller, Get, HttpCode, Post, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { Audited, resultFields } from '#otter/audit';
import { CurrentPrincipal, RequireRole, type Principal } from '#otter/auth';
import { eventFilterQuerySchema, type EventFilterQuery, type EventTicketDto } from '#otter/contracts';
import { EventTickets } from '#otter/events';
import { ApiRoute } from '../api-contract/api-route.js';
import { eventTicketSchema } from '#otter/contracts';
import { EventStreamGuard } from './event-stream.guard.js';
import { EventStreamService } from './event-stream.service.js';
import { ValidHeader, ValidQuery } from '../api-contract/valid-input.js';
import { eventStreamRequest, lastEventIdHeaderSchema } from './event-requests.js';

@Controller('api/v1/events')
export class EventsController {
  constructor(
    private readonly streams: EventStreamService,
    private readonly tickets: EventTickets,
  ) {}

  /** Server-sent events; see docs/events.md. */
  @ApiRoute({
    summary: 'The live event stream (server-sent events)',
    description:
      'One `id:`/`event:`/`data:` record per event (data: an OtterEvent as JSON), heartbeats as comments, resumable with Last-Event-ID; see docs/events.md.',
    response: { mediaType: 'text/event-stream', description: 'Server-sent events.' },
    errors: ['EVENTS_UNAVAILABLE'],
  })
  @Get()
  @UseGuards(EventStreamGuard)
  async stream(
    @ValidQuery(eventFilterQuerySchema) query: EventFilterQuery,
    @ValidHeader('last-event-id', lastEventIdHeaderSchema) lastEventId: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const request = eventStreamRequest(query, lastEventId);
    await this.streams.serve(request, () => {
      reply.hijack();
      return reply.raw;
    });
  }

  /** A single-use ticket for `?ticket=`, carrying the caller's identity and role. */
  @ApiRoute({
    summary: 'A single-use ticket for the event stream (browsers)',
    response: eventTicketSchema,
    errors: ['EVENTS_UNAVAILABLE'],
  })
  @Post('tickets')
  @HttpCode(201)
  @RequireRole('viewer')
  // A credential, if a short one: recorded like a token's creation (never the ticket itself).
  @Audited('events.ticket.issued', { target: { kind: 'token' }, changes: resultFields('expiresAt') })
  issueTicket(@CurrentPrincipal() who: Principal): Promise<EventTicketDto> {
    return this.tickets.issue(who);
  }
}
