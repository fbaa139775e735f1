import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';

/** The event publisher's (and the ticket store's) Redis connection. */
export const EVENTS_REDIS = Symbol('EVENTS_REDIS');

/**
 * A connection for the events lib. Lazy, so a process that fails to boot leaves no socket behind; a command
 * gives up after `commandTimeout` ms, so a business operation never waits long on an absent Redis to report
 * what it did. `blocking` connections (XREAD BLOCK) have no command timeout.
 */
export function createEventsRedis(url: string, name: string, blocking = false): Redis {
  const logger = new Logger('EventsRedis');
  const redis = new Redis(url, {
    connectionName: name,
    lazyConnect: true,
    maxRetriesPerRequest: blocking ? null : 1,
    ...(blocking ? {} : { commandTimeout: 2000 }),
  });
  let last: string | undefined;
  // One line per distinct problem, not one per reconnect attempt.
  redis.on('error', (e: Error) => {
    if (e.message !== last) logger.warn(`redis (${name}): ${e.message}`);
    last = e.message;
  });
  redis.on('ready', () => (last = undefined));
  return redis;
}

/** Closes a connection and waits (at most a second) until its socket is gone. */
export async function closeEventsRedis(redis: Redis): Promise<void> {
  const status = redis.status;
  if (status === 'end') return;
  const ended = once(redis, 'end');
  if (status === 'ready') await redis.quit().catch(() => redis.disconnect());
  else redis.disconnect();
  if (status === 'ready' || status === 'connect' || status === 'connecting') {
    await Promise.race([ended, sleep(1000, undefined, { ref: false })]);
  }
}
