import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventsClient, type StreamedMessage } from '#otter/api-client';
import type { NewOtterEvent } from '#otter/contracts';
import { EventPublisher, EventReader, eventStreamKey } from '#otter/events';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { EventStreamService } from './event-stream.service.js';

// GET /api/v1/events and its tickets against a real api and Redis: order, resume, reset, filters, auth, and
// that a closed client leaves nothing behind.

let api: ApiHarness;
let publisher: EventPublisher;
let redis: Redis;
let viewer: string;
let client: EventsClient;

const rolloutEvent = (rolloutId: string, wave: number): NewOtterEvent => ({
  kind: 'rollout.wave.started',
  rolloutId,
  hardwareId: 'rpi4',
  wave,
});

beforeAll(async () => {
  api = await startApi({ OTTER_EVENTS_TICKET_TTL: '1', OTTER_EVENTS_HEARTBEAT_SECONDS: '1' });
  publisher = api.app.get(EventPublisher);
  redis = new Redis(api.config.redisUrl);
  viewer = (
    await api.admin<{ token: string }>('POST', '/api/v1/tokens', {
      name: `v-${randomUUID()}`,
      role: 'viewer',
    })
  ).token;
  client = new EventsClient({ server: api.url, token: viewer });
});
afterAll(async () => {
  await redis?.quit();
  await api?.close();
});

/** Reads `count` messages from a followed stream, then closes it. */
async function take(
  count: number,
  options: Parameters<EventsClient['events']>[0] = {},
): Promise<StreamedMessage[]> {
  const controller = new AbortController();
  const got: StreamedMessage[] = [];
  for await (const message of client.events({ follow: true, ...options, signal: controller.signal })) {
    got.push(message);
    if (got.length === count) break;
  }
  controller.abort();
  return got;
}

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await sleep(25);
  expect(check()).toBe(true);
}

describe('GET /api/v1/events', () => {
  it('delivers live events in order, each with its stream id and kind', async () => {
    const rolloutId = randomUUID();
    const reader = take(20, { rolloutId });
    // A client without Last-Event-ID gets what is published once its stream is open.
    await waitFor(() => api.app.get(EventStreamService).openStreams > 0);
    for (let wave = 1; wave <= 20; wave++) await publisher.publish(rolloutEvent(rolloutId, wave));
    const got = await reader;
    expect(
      got.map((m) => (m.type === 'event' && m.event.kind === 'rollout.wave.started' ? m.event.wave : 0)),
    ).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const ids = got.map((m) => (m.type === 'event' ? m.id : ''));
    expect([...ids].sort((a, b) => (BigInt(a.split('-')[0]!) < BigInt(b.split('-')[0]!) ? -1 : 0))).toEqual(
      ids,
    );
  });

  it('resumes after Last-Event-ID without a gap or a repeat, live events following', async () => {
    const rolloutId = randomUUID();
    const ids: string[] = [];
    for (let wave = 1; wave <= 5; wave++) ids.push((await publisher.publish(rolloutEvent(rolloutId, wave)))!);
    const resumed = take(5, { rolloutId, lastEventId: ids[1] });
    await waitFor(() => api.app.get(EventStreamService).openStreams > 0);
    await publisher.publish(rolloutEvent(rolloutId, 6));
    await publisher.publish(rolloutEvent(rolloutId, 7));
    const got = await resumed;
    expect(got.map((m) => (m.type === 'event' && 'wave' in m.event ? m.event.wave : 0))).toEqual([
      3, 4, 5, 6, 7,
    ]);
    expect(got[0]!.type === 'event' && got[0]!.id).toBe(ids[2]);
  });

  it('without follow sends what the stream holds and ends; ?lastEventId= works like the header', async () => {
    const rolloutId = randomUUID();
    const ids: string[] = [];
    for (let wave = 1; wave <= 3; wave++) ids.push((await publisher.publish(rolloutEvent(rolloutId, wave)))!);
    const all: StreamedMessage[] = [];
    for await (const m of client.events({ rolloutId })) all.push(m);
    expect(all).toHaveLength(3);
    const res = await fetch(
      `${api.url}/api/v1/events?follow=false&rollout=${rolloutId}&lastEventId=${ids[0]}`,
      {
        headers: { authorization: `Bearer ${viewer}` },
      },
    );
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    expect(text).toContain(`id: ${ids[1]}\nevent: rollout.wave.started\ndata: {`);
    expect(text).not.toContain(`id: ${ids[0]}\n`);
  });

  it('says stream.reset when the resume point fell out of the retention window', async () => {
    const rolloutId = randomUUID();
    const first = (await publisher.publish(rolloutEvent(rolloutId, 1)))!;
    await publisher.publish(rolloutEvent(rolloutId, 2));
    // What retention does over time, at once: everything up to and including the client's last event is gone.
    await redis.xtrim(eventStreamKey(api.config.queuePrefix), 'MAXLEN', 1);
    const got: StreamedMessage[] = [];
    for await (const m of client.events({ rolloutId, lastEventId: first })) got.push(m);
    expect(got[0]).toMatchObject({ type: 'reset', lastEventId: first });
    expect(got.slice(1).map((m) => m.type === 'event' && 'wave' in m.event && m.event.wave)).toEqual([2]);
  });

  it('filters by kind (exact and prefix), rollout, node and hardware', async () => {
    const rolloutId = randomUUID();
    const nodeId = randomUUID();
    await publisher.publishAll([
      rolloutEvent(rolloutId, 1),
      { kind: 'rollout.node.admitted', rolloutId, hardwareId: 'rpi4', nodeId, wave: 1, fromVersion: null },
      { kind: 'node.approved', nodeId, hardwareId: 'rpi4' },
      {
        kind: 'release.published',
        hardwareId: 'other-hw',
        releaseId: randomUUID(),
        version: '1.0.0',
        length: 1,
      },
    ]);
    const kinds = async (options: Parameters<EventsClient['events']>[0]): Promise<string[]> => {
      const got: string[] = [];
      for await (const m of client.events(options)) if (m.type === 'event') got.push(m.event.kind);
      return got;
    };
    expect(await kinds({ rolloutId })).toEqual(['rollout.wave.started', 'rollout.node.admitted']);
    expect(await kinds({ nodeId })).toEqual(['rollout.node.admitted', 'node.approved']);
    expect(await kinds({ nodeId, kinds: ['node.*'] })).toEqual(['node.approved']);
    expect(await kinds({ nodeId, kinds: ['rollout.node.admitted', 'node.approved'] })).toHaveLength(2);
    expect(await kinds({ hardwareId: 'other-hw' })).toEqual(['release.published']);
  });

  it('sends heartbeats on an idle stream', async () => {
    const controller = new AbortController();
    const res = await fetch(`${api.url}/api/v1/events?rollout=${randomUUID()}`, {
      headers: { authorization: `Bearer ${viewer}` },
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes(': heartbeat')) text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
  });

  it('releases everything when the client goes away', async () => {
    const streams = api.app.get(EventStreamService);
    const reader = api.app.get(EventReader);
    await waitFor(() => streams.openStreams === 0 && !reader.tailOpen);
    const controllers = Array.from({ length: 5 }, () => new AbortController());
    const responses = await Promise.all(
      controllers.map((c) =>
        fetch(`${api.url}/api/v1/events`, {
          headers: { authorization: `Bearer ${viewer}` },
          signal: c.signal,
        }),
      ),
    );
    expect(responses.every((r) => r.status === 200)).toBe(true);
    await waitFor(() => streams.openStreams === 5 && reader.liveSubscribers === 5 && reader.tailOpen);
    // One blocking Redis connection serves all of them.
    const readers = async (): Promise<number> =>
      ((await redis.client('LIST')) as string)
        .split('\n')
        .filter((l) => l.includes('name=otter-events-reader')).length;
    expect(await readers()).toBeGreaterThanOrEqual(1);
    for (const c of controllers) c.abort();
    await waitFor(() => streams.openStreams === 0 && reader.liveSubscribers === 0 && !reader.tailOpen);
  });

  it('refuses bad filters with 400 and the reason', async () => {
    for (const [query, field] of [
      ['kind=nope', 'kind'],
      ['kind=nothing.*', 'kind'],
      ['lastEventId=yesterday', 'lastEventId'],
      ['rollout=', 'rollout'],
      ['follow=maybe', 'follow'],
      ['color=red', 'color'],
    ] as const) {
      const res = await fetch(`${api.url}/api/v1/events?${query}`, {
        headers: { authorization: `Bearer ${viewer}` },
      });
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as { code: string; message: string; details: { field: string } };
      expect(body.code).toBe('VALIDATION_FAILED');
      expect(body.details.field, query).toBe(field);
    }
    const res = await fetch(`${api.url}/api/v1/events`, {
      headers: { authorization: `Bearer ${viewer}`, 'last-event-id': 'x' },
    });
    expect(res.status).toBe(400);
  });

  it('refuses a request without a token, with a bad token, or with a token and a ticket', async () => {
    expect((await fetch(`${api.url}/api/v1/events`)).status).toBe(401);
    expect(
      (await fetch(`${api.url}/api/v1/events`, { headers: { authorization: 'Bearer otter_nope' } })).status,
    ).toBe(401);
    const { ticket } = await client.issueEventTicket();
    const both = await fetch(`${api.url}/api/v1/events?ticket=${ticket}`, {
      headers: { authorization: `Bearer ${viewer}` },
    });
    expect(both.status).toBe(400);
  });
});

describe('POST /api/v1/events/tickets', () => {
  it('gives a viewer a ticket that opens the stream once, and then never again', async () => {
    const { ticket, expiresAt } = await client.issueEventTicket();
    expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
    const controller = new AbortController();
    const first = await fetch(`${api.url}/api/v1/events?ticket=${encodeURIComponent(ticket)}`, {
      signal: controller.signal,
    });
    expect(first.status).toBe(200);
    controller.abort();
    const again = await fetch(`${api.url}/api/v1/events?ticket=${encodeURIComponent(ticket)}&follow=false`);
    expect(again.status).toBe(401);
    expect(((await again.json()) as { message: string }).message).toMatch(/used or expired ticket/);
  });

  it('lets a ticket expire unused (OTTER_EVENTS_TICKET_TTL)', async () => {
    const { ticket } = await client.issueEventTicket();
    await sleep(2100);
    expect((await fetch(`${api.url}/api/v1/events?ticket=${ticket}&follow=false`)).status).toBe(401);
  });

  it('refuses an invented ticket and a caller without a token', async () => {
    expect((await fetch(`${api.url}/api/v1/events?ticket=${'A'.repeat(43)}&follow=false`)).status).toBe(401);
    expect((await fetch(`${api.url}/api/v1/events/tickets`, { method: 'POST' })).status).toBe(401);
  });
});
