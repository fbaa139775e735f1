import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type OtterConfig } from '#otter/config';
import type { NewOtterEvent, StreamedEventDto } from '#otter/contracts';
import { EventPublisher } from './event-publisher.js';
import { EventReader, compareIds } from './event-reader.js';
import { EventTickets } from './event-tickets.js';
import { eventStreamKey } from './event-names.js';
import { createEventsRedis } from './events-redis.js';

// The publisher, reader and tickets against the test Redis, each test under a prefix of its own.

const url = process.env.OTTER_TEST_REDIS_URL!;
const connections: Redis[] = [];
const readers: EventReader[] = [];

function setup(env: Record<string, string> = {}): {
  config: OtterConfig;
  redis: Redis;
  publisher: EventPublisher;
  reader: EventReader;
  key: string;
} {
  const config = loadConfig({
    REDIS_URL: url,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    OTTER_DATA_DIR: '/tmp/otter-events-spec',
    ...env,
  });
  const redis = createEventsRedis(config.redisUrl, 'otter-events-spec');
  connections.push(redis);
  const reader = new EventReader(redis, config);
  readers.push(reader);
  return {
    config,
    redis,
    publisher: new EventPublisher(redis, config),
    reader,
    key: eventStreamKey(config.queuePrefix),
  };
}

afterEach(async () => {
  for (const reader of readers.splice(0)) await reader.onApplicationShutdown();
});
afterAll(() => {
  for (const redis of connections) redis.disconnect();
});

const wave = (n: number, rolloutId = 'r1'): NewOtterEvent => ({
  kind: 'rollout.wave.started',
  rolloutId,
  hardwareId: 'rpi4',
  wave: n,
});

describe('EventPublisher', () => {
  it('appends events in order with their time, and returns their stream ids', async () => {
    const { publisher, reader } = setup();
    const ids = await publisher.publishAll([wave(1), wave(2), wave(3)]);
    expect(ids.every((id) => id !== undefined)).toBe(true);
    const held = await reader.range('0-0');
    expect(held.map((e) => e.id)).toEqual(ids);
    expect(held.map((e) => (e.event.kind === 'rollout.wave.started' ? e.event.wave : 0))).toEqual([1, 2, 3]);
    expect(Date.parse(held[0]!.event.at)).toBeGreaterThan(Date.now() - 10_000);
    expect(publisher.published).toBe(3);
  });

  it('keeps about OTTER_EVENTS_MAX_COUNT events', async () => {
    const { publisher, redis, key } = setup({ OTTER_EVENTS_MAX_COUNT: '100' });
    for (let i = 0; i < 10; i++)
      await publisher.publishAll(Array.from({ length: 100 }, (_, j) => wave(i * 100 + j + 1)));
    const length = await redis.xlen(key);
    // Approximate trimming removes whole stream nodes (100 entries by default): never far above the bound.
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThanOrEqual(200);
  });

  it('drops events older than OTTER_EVENTS_MAX_AGE', async () => {
    const { publisher, redis, key, reader } = setup({ OTTER_EVENTS_MAX_AGE: '60' });
    // 150 events from two minutes ago: more than a stream node, so approximate trimming can drop one.
    const old = Date.now() - 120_000;
    for (let i = 0; i < 150; i++)
      await redis.xadd(
        key,
        `${old}-${i}`,
        'e',
        JSON.stringify({ ...wave(i + 1), at: new Date(old).toISOString() }),
      );
    await publisher.publish(wave(999));
    const held = await reader.range('0-0');
    expect(held.length).toBeLessThan(151);
    expect(held.at(-1)!.event).toMatchObject({ wave: 999 });
  });

  it('never throws when Redis is away: the loss is logged and counted', async () => {
    const config = loadConfig({
      REDIS_URL: 'redis://127.0.0.1:1',
      OTTER_QUEUE_PREFIX: 'away',
      OTTER_DATA_DIR: '/tmp/otter-events-spec',
    });
    const redis = createEventsRedis(config.redisUrl, 'otter-events-spec');
    connections.push(redis);
    const publisher = new EventPublisher(redis, config);
    const started = Date.now();
    expect(await publisher.publish(wave(1))).toBeUndefined();
    expect(publisher.failed).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('does not wait on a connection already found down: the events are counted lost without a command', async () => {
    const config = loadConfig({
      REDIS_URL: url,
      OTTER_QUEUE_PREFIX: 'down',
      OTTER_DATA_DIR: '/tmp/otter-events-spec',
    });
    for (const status of ['reconnecting', 'close', 'end']) {
      const down = {
        status,
        pipeline: () => {
          throw new Error('no command may be sent on a connection known to be down');
        },
      } as unknown as Redis;
      const publisher = new EventPublisher(down, config);
      expect(await publisher.publishAll([wave(1), wave(2)])).toEqual([undefined, undefined]);
      expect(publisher.failed).toBe(2);
    }
  });
});

describe('EventReader', () => {
  it('skips entries that are not known events rather than serving them', async () => {
    const { publisher, redis, key, reader } = setup();
    await publisher.publish(wave(1));
    await redis.xadd(key, '*', 'e', JSON.stringify({ kind: 'made.up', at: new Date().toISOString() }));
    await redis.xadd(key, '*', 'e', '{not json');
    await publisher.publish(wave(2));
    expect((await reader.range('0-0')).map((e) => e.event.kind)).toEqual([
      'rollout.wave.started',
      'rollout.wave.started',
    ]);
  });

  it('tells a resume inside the window from one whose next events were trimmed', async () => {
    const { publisher, redis, key, reader } = setup();
    expect(await reader.resumePoint('1-0')).toEqual({ reset: false });
    const [a, b, c] = (await publisher.publishAll([wave(1), wave(2), wave(3)])) as string[];
    expect((await reader.resumePoint(a!)).reset).toBe(false);
    expect((await reader.resumePoint('1-0')).reset).toBe(false); // nothing was ever trimmed
    await redis.xtrim(key, 'MAXLEN', 1);
    expect(await reader.resumePoint(a!)).toEqual({ reset: true, oldestId: c });
    expect((await reader.resumePoint(b!)).reset).toBe(true);
    expect((await reader.resumePoint(c!)).reset).toBe(false);
  });

  it('fans one blocking read out to every subscriber, in order, and closes it after the last leaves', async () => {
    const { publisher, reader } = setup();
    const seen: StreamedEventDto[][] = [[], [], []];
    const offs = await Promise.all(seen.map((list) => reader.subscribe((batch) => list.push(...batch))));
    expect(reader.tailOpen).toBe(true);
    const ids = await publisher.publishAll(Array.from({ length: 50 }, (_, i) => wave(i + 1, randomUUID())));
    for (let i = 0; i < 100 && seen.some((l) => l.length < 50); i++)
      await new Promise((r) => setTimeout(r, 20));
    for (const list of seen) expect(list.map((e) => e.id)).toEqual(ids);
    offs[0]!();
    offs[1]!();
    expect(reader.tailOpen).toBe(true);
    offs[2]!();
    expect(reader.tailOpen).toBe(false);
    expect(reader.liveSubscribers).toBe(0);
  });

  it('misses nothing between subscribing and reading the range', async () => {
    const { publisher, reader } = setup();
    await publisher.publish(wave(1));
    const live: StreamedEventDto[] = [];
    const off = await reader.subscribe((batch) => live.push(...batch));
    const after = await publisher.publish(wave(2));
    const held = await reader.range('0-0');
    for (let i = 0; i < 100 && live.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(held.map((e) => e.id)).toContain(after);
    expect(live.map((e) => e.id)).toEqual([after]);
    off();
  });

  it('orders stream ids numerically', () => {
    expect(compareIds('9-0', '10-0')).toBe(-1);
    expect(compareIds('10-2', '10-10')).toBe(-1);
    expect(compareIds('10-2', '10-2')).toBe(0);
    expect(compareIds('1765000000001-0', '1765000000000-5')).toBe(1);
  });
});

describe('EventTickets', () => {
  it('redeems a ticket once, with the identity and role it was issued for', async () => {
    const { redis, config } = setup();
    const tickets = new EventTickets(redis, config);
    const { ticket } = await tickets.issue({ tokenId: 't1', name: 'ci', role: 'viewer' });
    expect(await tickets.redeem(ticket)).toEqual({ tokenId: 't1', name: 'ci', role: 'viewer' });
    expect(await tickets.redeem(ticket)).toBeUndefined();
    expect(await tickets.redeem('not a ticket')).toBeUndefined();
  });
});
