import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { ROLES, type EventTicketDto, type Role } from '#otter/contracts';
import { eventTicketKey } from './event-names.js';
import { EVENTS_REDIS } from './events-redis.js';

/** Whom a ticket stands for: the management token that asked for it. */
export interface TicketHolder {
  tokenId: string;
  name: string;
  role: Role;
}

const TICKET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Single-use tickets for `GET /api/v1/events?ticket=` (browsers' EventSource cannot send a header). A ticket
 * is 256 random bits stored in Redis for OTTER_EVENTS_TICKET_TTL seconds with the identity and role of the
 * token that asked for it, and consumed with GETDEL: any api replica redeems it once, and only once.
 */
@Injectable()
export class EventTickets {
  constructor(
    @Inject(EVENTS_REDIS) private readonly redis: Redis,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async issue(holder: TicketHolder): Promise<EventTicketDto> {
    const ticket = randomBytes(32).toString('base64url');
    const ttl = this.config.events.ticketTtlSeconds;
    const value = JSON.stringify({ tokenId: holder.tokenId, name: holder.name, role: holder.role });
    await this.redis.set(eventTicketKey(this.config.queuePrefix, ticket), value, 'EX', ttl);
    return { ticket, expiresAt: new Date(Date.now() + ttl * 1000).toISOString() };
  }

  /** The holder of a valid, unused ticket (which is used up by this), or undefined. */
  async redeem(ticket: string): Promise<TicketHolder | undefined> {
    if (!TICKET_PATTERN.test(ticket)) return undefined;
    const value = await this.redis.getdel(eventTicketKey(this.config.queuePrefix, ticket));
    if (!value) return undefined;
    const holder = JSON.parse(value) as TicketHolder;
    return (ROLES as readonly string[]).includes(holder.role) ? holder : undefined;
  }
}
