import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplicationContext } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventsClient, type StreamedMessage } from '#otter/api-client';
import { loadConfig } from '#otter/config';
import type { OtterEvent, OtterEventKind, RolloutDto, RolloutNodeDto, UpdateStep } from '#otter/contracts';
import { testDatabases } from '#otter/db';
import { EventPublisher } from '#otter/events';
import { RolloutFixtures, twoWaveRollout } from '../apps/api/src/rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { deviceCredentialsFor } from '../apps/api/src/testing/software-device-key.js';
import { EventStreamService } from '../apps/api/src/events/event-stream.service.js';
import { createScheduler } from '../apps/scheduler/src/create-scheduler.js';

// Issue 10's acceptance of the event stream: a release pushed and a two-wave rollout run (the scheduler's
// own ticks, the nodes' reports through the device API) while a client follows GET /api/v1/events. The
// client leaves halfway and resumes with Last-Event-ID; what it saw in two parts is exactly what the stream
// holds, in order, and includes what only the scheduler process publishes. Tickets work once and expire.

const [sqlite] = (await testDatabases()).filter((d) => d.name === 'sqlite');
const HW = `hw-${randomBytes(4).toString('hex')}`;
const STEPS: UpdateStep[] = ['downloading', 'installed', 'rebooting', 'booted', 'attested', 'committed'];

let api: ApiHarness;
let scheduler: INestApplicationContext;
let client: EventsClient;
let admin: string;
const fromScheduler = new Set<string>();

beforeAll(async () => {
  const env = {
    DATABASE_URL: `sqlite:${sqlite!.config.dialect === 'sqlite' ? sqlite!.config.file : ''}`,
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    OTTER_ROLLOUT_TICK_SECONDS: '1',
    OTTER_EVENTS_TICKET_TTL: '1',
  };
  api = await startApi(env);
  scheduler = await createScheduler(
    loadConfig({ ...env, OTTER_DATA_DIR: api.config.dataDir, OTTER_LOG_LEVEL: 'silent', OTTER_ENV: 'test' }),
  );
  admin = readFileSync(`${api.config.dataDir}/admin-token`, 'utf8').trim();
  // Records the stream ids the scheduler process wrote, to tell its events from the api's.
  const publisher = scheduler.get(EventPublisher);
  const publishAll = publisher.publishAll.bind(publisher);
  publisher.publishAll = async (events) => {
    const written = await publishAll(events);
    for (const id of written) if (id) fromScheduler.add(id);
    return written;
  };
  const viewer = await api.admin<{ token: string }>('POST', '/api/v1/tokens', {
    name: `viewer-${randomUUID()}`,
    role: 'viewer',
  });
  client = new EventsClient({ server: api.url, token: viewer.token });
});
afterAll(async () => {
  await scheduler?.close();
  await api?.close();
  await sqlite?.drop();
});

/** Follows the stream in the background until `until` holds for a message or `stop()` is called. */
function follow(lastEventId?: string): {
  got: StreamedMessage[];
  done: Promise<void>;
  stop: () => void;
  until: (check: (e: OtterEvent) => boolean) => Promise<void>;
} {
  const controller = new AbortController();
  const got: StreamedMessage[] = [];
  const done = (async () => {
    for await (const m of client.events({
      follow: true,
      hardwareId: HW,
      lastEventId,
      signal: controller.signal,
    }))
      got.push(m);
  })();
  const until = async (check: (e: OtterEvent) => boolean): Promise<void> => {
    await expect
      .poll(() => got.some((m) => m.type === 'event' && check(m.event)), { timeout: 20_000 })
      .toBe(true);
  };
  return { got, done, stop: () => controller.abort(), until };
}

async function pushRelease(version: string): Promise<void> {
  const form = new FormData();
  form.append('hardware', HW);
  form.append('version', version);
  form.append('measurements', JSON.stringify({ 9: randomBytes(32).toString('hex') }));
  form.append('image', new Blob([randomBytes(4096)]), 'image.bin');
  const res = await fetch(`${api.url}/api/v1/releases`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}` },
    body: form,
  });
  expect(res.status, await res.clone().text()).toBe(201);
}

/** The agent's reports of one update, through the device API with the node's DPoP-bound token. */
async function update(nodeId: string, rolloutId: string): Promise<void> {
  const device = await deviceCredentialsFor(api.app, nodeId);
  const url = `${api.url}/api/v1/devices/me/updates`;
  for (const step of STEPS) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { ...(await device.headers('POST', url)), 'content-type': 'application/json' },
      body: JSON.stringify({
        step,
        version: '2.0.0',
        rolloutId,
        at: new Date().toISOString(),
        ...(step === 'downloading' ? { bytes: 4096 } : {}),
      }),
    });
    expect(res.status, step).toBe(202);
  }
}

const ids = (messages: StreamedMessage[]): string[] =>
  messages.flatMap((m) => (m.type === 'event' ? [m.id] : []));
const kinds = (messages: StreamedMessage[]): OtterEventKind[] =>
  messages.flatMap((m) => (m.type === 'event' ? [m.event.kind] : []));

describe('the event stream during a release and a rollout', () => {
  it('delivers every event in order, resumes without a gap, and carries the scheduler’s events', async () => {
    const fixtures = new RolloutFixtures(api);
    const first = follow();
    // A client without Last-Event-ID gets what is published once its stream is open.
    await expect.poll(() => api.app.get(EventStreamService).openStreams).toBe(1);

    await pushRelease('1.0.0');
    await pushRelease('2.0.0');
    const nodes = [await fixtures.node(HW, '1.0.0'), await fixtures.node(HW, '1.0.0')];
    for (const n of nodes) await fixtures.verdict(n, true, new Date());
    const rollout = await api.admin<RolloutDto>(
      'POST',
      '/api/v1/rollouts',
      twoWaveRollout(HW, '2.0.0', `events-${randomUUID()}`),
    );
    await api.admin('POST', `/api/v1/rollouts/${rollout.id}/start`);
    const states = async (): Promise<RolloutNodeDto[]> =>
      (await api.admin<{ nodes: RolloutNodeDto[] }>('GET', `/api/v1/rollouts/${rollout.id}/nodes`)).nodes;

    // Wave 1: the scheduler admits one node, which reports its way to committed and proves it booted 2.0.0.
    await first.until((e) => e.kind === 'rollout.node.admitted');
    const firstNode = (await states()).find((n) => n.state === 'assigned')!.nodeId;
    await update(firstNode, rollout.id);
    await first.until((e) => e.kind === 'rollout.node.step' && e.step === 'committed');
    await fixtures.verdict(firstNode, true, new Date(Date.now() + 1000), '2.0.0');
    await first.until((e) => e.kind === 'rollout.wave.started' && e.wave === 2);

    // The client goes away; events keep coming (wave 2's admission) while it is gone.
    first.stop();
    await first.done;
    const lastSeen = ids(first.got).at(-1)!;
    await expect
      .poll(async () => (await states()).map((n) => n.state).sort(), { timeout: 20_000 })
      .toEqual(['assigned', 'succeeded']);

    const second = follow(lastSeen);
    const secondNode = (await states()).find((n) => n.state === 'assigned')!.nodeId;
    await update(secondNode, rollout.id);
    await fixtures.verdict(secondNode, true, new Date(Date.now() + 1000), '2.0.0');
    await second.until((e) => e.kind === 'rollout.completed');
    second.stop();
    await second.done;

    // Nothing lost, nothing twice: the two parts are exactly what the stream holds for this hardware id.
    const held: StreamedMessage[] = [];
    for await (const m of client.events({ hardwareId: HW, lastEventId: '0-0' })) held.push(m);
    expect([...ids(first.got), ...ids(second.got)]).toEqual(ids(held));
    expect(second.got.every((m) => m.type === 'event')).toBe(true);

    const all = kinds(held);
    const order: OtterEventKind[] = [
      'release.published',
      'release.published',
      'rollout.created',
      'rollout.started',
      'rollout.wave.started',
      'rollout.node.admitted',
      'rollout.node.step',
      'rollout.node.succeeded',
      'rollout.wave.started',
      'rollout.node.admitted',
      'rollout.node.step',
      'rollout.node.succeeded',
      'rollout.completed',
    ];
    let at = 0;
    for (const kind of all) if (kind === order[at]) at++;
    expect(at, all.join(', ')).toBe(order.length);
    expect(all.filter((k) => k === 'rollout.node.step')).toHaveLength(2 * STEPS.length);
    const downloading = held.find((m) => m.type === 'event' && m.event.kind === 'rollout.node.step');
    expect(downloading).toMatchObject({ event: { step: 'downloading', bytes: 4096, rolloutId: rollout.id } });

    // Admissions, successes, wave 2 and completion are the scheduler's: its process wrote them, the api served them.
    const scheduled = held.flatMap((m) =>
      m.type === 'event' &&
      ['rollout.node.admitted', 'rollout.node.succeeded', 'rollout.completed'].includes(m.event.kind)
        ? [m.id]
        : [],
    );
    expect(scheduled).toHaveLength(5);
    for (const id of scheduled) expect(fromScheduler.has(id), id).toBe(true);
    // ... and the api's own (the nodes' steps) were not.
    const steps = held.flatMap((m) =>
      m.type === 'event' && m.event.kind === 'rollout.node.step' ? [m.id] : [],
    );
    for (const id of steps) expect(fromScheduler.has(id), id).toBe(false);
  });

  it('opens the stream once per ticket, and never with an expired one', async () => {
    const { ticket } = await client.issueEventTicket();
    const first = await fetch(`${api.url}/api/v1/events?follow=false&ticket=${ticket}`);
    expect(first.status).toBe(200);
    await first.text();
    expect((await fetch(`${api.url}/api/v1/events?follow=false&ticket=${ticket}`)).status).toBe(401);
    const unused = await client.issueEventTicket();
    await sleep(2100);
    expect((await fetch(`${api.url}/api/v1/events?follow=false&ticket=${unused.ticket}`)).status).toBe(401);
  });

  it('refuses bad input to the new endpoints with a 4xx and the reason', async () => {
    const res = await fetch(`${api.url}/api/v1/events?kind=rollout.nope&follow=false`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/kind/);
    expect((await fetch(`${api.url}/api/v1/events/tickets`, { method: 'POST' })).status).toBe(401);
  });
});
