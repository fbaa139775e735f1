import { Global, Inject, Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { EventPublisher } from './event-publisher.js';
import { EventReader } from './event-reader.js';
import { EventTickets } from './event-tickets.js';
import { EVENTS_REDIS, closeEventsRedis, createEventsRedis } from './events-redis.js';

@Injectable()
class EventsRedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(EVENTS_REDIS) private readonly redis: Redis) {}

  onApplicationShutdown(): Promise<void> {
    return closeEventsRedis(this.redis);
  }
}

/**
 * The event stream for every process (api, scheduler, delta-worker): EventPublisher for the sources,
 * EventReader and EventTickets for the api's GET /api/v1/events. Global, so a lib's service injects the
 * publisher without each lib module importing this one; the application imports it once.
 */
@Global()
@Module({
  providers: [
    {
      provide: EVENTS_REDIS,
      inject: [OTTER_CONFIG],
      useFactory: (config: OtterConfig): Redis => createEventsRedis(config.redisUrl, 'otter-events'),
    },
    EventsRedisLifecycle,
    EventPublisher,
    EventReader,
    EventTickets,
  ],
  exports: [EventPublisher, EventReader, EventTickets],
})
export class EventsModule {}
