import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { otterEventSchema, type StreamedEventDto } from '#otter/contracts';
import { EVENT_FIELD, eventStreamKey } from './event-names.js';
import { EVENTS_REDIS, createEventsRedis } from './events-redis.js';

export type EventBatchListener = (events: readonly StreamedEventDto[]) => void;

/** Where a resuming client stands: `reset` when events after its id may have been trimmed. */
export interface ResumePoint {
  reset: boolean;
  /** The oldest event the stream still holds, if any. */
  oldestId?: string;
}

interface LiveTail {
  redis: Redis;
  /** Resolves once the tail's cursor is fixed: every event after it reaches the listeners. */
  ready: Promise<void>;
  stopped: boolean;
}

const BLOCK_MS = 5000;
const BATCH = 1000;

/**
 * Reads the event stream. `range` pages through what the stream holds; `subscribe` follows it live through one
 * blocking connection per process (XREAD BLOCK), shared by every subscriber and closed when the last one
 * leaves, so 100 SSE clients cost one Redis connection, and each event is read and parsed once.
 */
@Injectable()
export class EventReader implements OnApplicationShutdown {
  private readonly logger = new Logger(EventReader.name);
  private readonly key: string;
  private readonly listeners = new Set<EventBatchListener>();
  private tail?: LiveTail;

  constructor(
    @Inject(EVENTS_REDIS) private readonly redis: Redis,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {
    this.key = eventStreamKey(config.queuePrefix);
  }

  /** Subscribers of the live tail right now, and whether its blocking connection is open. */
  get liveSubscribers(): number {
    return this.listeners.size;
  }

  get tailOpen(): boolean {
    return this.tail !== undefined;
  }

  /** Up to `count` events after `afterId` (exclusive), oldest first; `0-0` reads from the beginning. */
  async range(afterId: string, count = BATCH): Promise<StreamedEventDto[]> {
    const entries = await this.redis.xrange(this.key, `(${afterId}`, '+', 'COUNT', count);
    return this.parse(entries);
  }

  /**
   * Whether a client that saw `lastId` can resume without a gap: it can unless events after it were trimmed.
   * Redis records how many entries were ever added, so a stream that never trimmed anything never resets; past
   * that, an id older than the oldest entry still held is a reset (the event right after it may be gone).
   */
  async resumePoint(lastId: string): Promise<ResumePoint> {
    let info: unknown[];
    try {
      info = (await this.redis.xinfo('STREAM', this.key)) as unknown[];
    } catch (e) {
      // No stream yet: nothing was ever published, so nothing was trimmed.
      if (e instanceof Error && /no such key/i.test(e.message)) return { reset: false };
      throw e;
    }
    const field = (name: string): unknown => info[info.indexOf(name) + 1];
    const length = Number(field('length'));
    const added = Number(field('entries-added'));
    const first = field('first-entry') as [string, string[]] | null;
    if (!first)
      return {
        reset: added > 0 && lastId !== '0-0' && compareIds(lastId, String(field('last-generated-id'))) < 0,
      };
    const trimmed = added > length;
    return { reset: trimmed && compareIds(lastId, first[0]) < 0, oldestId: first[0] };
  }

  /**
   * Follows the stream live. Resolves once the shared tail's position is fixed: every event added after that
   * reaches `listener` (in batches, in stream order), so a caller that reads `range` after this resolves misses
   * nothing between the two. The returned function unsubscribes; the last one out closes the connection.
   */
  async subscribe(listener: EventBatchListener): Promise<() => void> {
    this.listeners.add(listener);
    this.tail ??= this.startTail();
    const tail = this.tail;
    const unsubscribe = (): void => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.tail === tail) this.stopTail();
    };
    try {
      await tail.ready;
    } catch (e) {
      unsubscribe();
      throw e;
    }
    return unsubscribe;
  }

  async onApplicationShutdown(): Promise<void> {
    this.listeners.clear();
    if (this.tail) this.stopTail();
  }

  private startTail(): LiveTail {
    const redis = createEventsRedis(this.config.redisUrl, 'otter-events-reader', true);
    let cursor = '0-0';
    const tail: LiveTail = {
      redis,
      stopped: false,
      ready: redis.xrevrange(this.key, '+', '-', 'COUNT', 1).then((last) => {
        cursor = last[0]?.[0] ?? '0-0';
      }),
    };
    tail.ready.then(
      () => void this.follow(tail, cursor),
      () => {
        if (this.tail === tail) this.stopTail();
      },
    );
    return tail;
  }

  private stopTail(): void {
    const tail = this.tail;
    this.tail = undefined;
    if (!tail) return;
    tail.stopped = true;
    // Cuts the blocked XREAD short (QUIT would wait for it); follow() sees `stopped` and returns.
    tail.redis.disconnect();
  }

  private async follow(tail: LiveTail, from: string): Promise<void> {
    let cursor = from;
    while (!tail.stopped) {
      let result: Array<[string, Array<[string, string[]]>]> | null;
      try {
        result = (await tail.redis.xread(
          'COUNT',
          BATCH,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.key,
          cursor,
        )) as Array<[string, Array<[string, string[]]>]> | null;
      } catch (e) {
        if (tail.stopped) return;
        this.logger.warn(`event stream read failed: ${e instanceof Error ? e.message : String(e)}`);
        await sleep(500);
        continue;
      }
      const entries = result?.[0]?.[1] ?? [];
      if (entries.length === 0 || tail.stopped) continue;
      cursor = entries[entries.length - 1]![0];
      const batch = this.parse(entries);
      if (batch.length === 0) continue;
      for (const listener of [...this.listeners]) {
        try {
          listener(batch);
        } catch (e) {
          this.logger.warn(`an event listener failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
  }

  private parse(entries: Array<[string, string[]]>): StreamedEventDto[] {
    const events: StreamedEventDto[] = [];
    for (const [id, fields] of entries) {
      const json = fields[fields.indexOf(EVENT_FIELD) + 1];
      let parsed: ReturnType<typeof otterEventSchema.safeParse> | undefined;
      try {
        parsed = otterEventSchema.safeParse(JSON.parse(json ?? ''));
      } catch {
        parsed = undefined;
      }
      // A newer process's kind this one does not know, or a foreign entry: skipped, not served unchecked.
      if (parsed?.success) events.push({ id, event: parsed.data });
      else this.logger.warn({ id }, 'skipping a stream entry that is not a known event');
    }
    return events;
  }
}

/** Orders two stream ids (`<ms>-<seq>`) numerically. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}
