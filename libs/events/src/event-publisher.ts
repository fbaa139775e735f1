import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import type { NewOtterEvent, OtterEvent } from '#otter/contracts';
import { afterCommit, inAmbientTransaction } from '#otter/db';
import { EVENT_FIELD, eventStreamKey } from './event-names.js';
import { EVENTS_REDIS } from './events-redis.js';

/** Connection states in which a command would only wait for a reconnect (not a first connect) to fail. */
const KNOWN_DOWN = new Set(['reconnecting', 'close', 'end']);

/**
 * Appends Otter's domain events to the Redis Stream `<OTTER_QUEUE_PREFIX>:events`, trimmed (approximately)
 * to OTTER_EVENTS_MAX_AGE and OTTER_EVENTS_MAX_COUNT. Callers publish after the change they report is
 * committed. Publishing never fails the caller: the change happened whether or not its event was written, so a
 * failure is logged and counted (`failed`), never thrown.
 */
@Injectable()
export class EventPublisher {
  private readonly logger = new Logger(EventPublisher.name);
  private readonly key: string;
  /** Events written, and events lost because Redis did not take them (for metrics). */
  published = 0;
  failed = 0;

  constructor(
    @Inject(EVENTS_REDIS) private readonly redis: Redis,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {
    this.key = eventStreamKey(config.queuePrefix);
  }

  /** Publishes one event; resolves to its stream id, or undefined when it could not be written. */
  async publish(event: NewOtterEvent): Promise<string | undefined> {
    return (await this.publishAll([event]))[0];
  }

  /**
   * Publishes events in order in one round trip (a scheduler tick's admissions, say). Called inside a
   * management call's transaction (the audit log's, libs/db runInTransaction), the events go out once it
   * commits, and never if it rolls back: a client of the stream must be able to read what an event reports.
   * The caller is not kept waiting for that commit (it would wait for itself); the ids are then undefined.
   */
  async publishAll(events: readonly NewOtterEvent[]): Promise<Array<string | undefined>> {
    if (events.length === 0) return [];
    if (inAmbientTransaction()) {
      void afterCommit(() => this.write(events), []);
      return events.map(() => undefined);
    }
    return this.write(events);
  }

  private async write(events: readonly NewOtterEvent[]): Promise<Array<string | undefined>> {
    // A connection already found down is not waited on: ioredis would hold each command until its next
    // reconnect attempt (backing off to 2 s) before failing it, and a release published during an outage
    // publishes several batches (the re-signed roles, the release, its delta builds), each of which would
    // wait in turn. Events are lost during an outage either way; the caller is not kept waiting for that.
    if (KNOWN_DOWN.has(this.redis.status)) {
      this.lost(events.length, events, new Error(`redis connection is ${this.redis.status}`));
      return events.map(() => undefined);
    }
    const now = Date.now();
    const minId = `${now - this.config.events.maxAgeSeconds * 1000}-0`;
    const pipeline = this.redis.pipeline();
    for (const event of events) {
      const full = { ...event, at: event.at ?? new Date(now).toISOString() } as OtterEvent;
      // MAXLEN on every add bounds the count; the age bound is applied by the XTRIM below.
      pipeline.xadd(
        this.key,
        'MAXLEN',
        '~',
        this.config.events.maxCount,
        '*',
        EVENT_FIELD,
        JSON.stringify(full),
      );
    }
    pipeline.xtrim(this.key, 'MINID', '~', minId);
    try {
      const results = (await pipeline.exec()) ?? [];
      const ids = results.slice(0, events.length).map(([error, id]) => (error ? undefined : (id as string)));
      const lost = ids.filter((id) => id === undefined).length;
      this.published += ids.length - lost;
      if (lost > 0) this.lost(lost, events, results.find(([error]) => error)?.[0]);
      return ids;
    } catch (e) {
      this.lost(events.length, events, e);
      return events.map(() => undefined);
    }
  }

  private lost(count: number, events: readonly NewOtterEvent[], error: unknown): void {
    this.failed += count;
    this.logger.warn(
      {
        lost: count,
        kinds: [...new Set(events.map((e) => e.kind))],
        err: error instanceof Error ? error.message : String(error),
      },
      'events not published',
    );
  }
}
