import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { testDatabases } from '#otter/db';
import { DirectorAssignmentRepository, DirectorRepository, POLL_HOLD_MS } from '#otter/director';
import { DeviceIdentityService } from '#otter/nodes';
import type { SignedEnvelope, TimestampSigned } from '#otter/tuf-signing';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { databaseEnv } from './testing/database-env.js';
import { DirectorFixtures, type TestNode } from './testing/director-fixtures.js';

// The poll path (DirectorPollService behind a plain Fastify route): a node's timestamp.json is served from
// what this process holds for at most POLL_HOLD_MS after the database confirmed it. Changes made by another
// process (a scheduler, another api replica) are simulated by writing the database and Redis directly.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const image = randomBytes(3000);
const signedImage = { sha256: createHash('sha256').update(image).digest('hex'), length: image.length };
const pastTheHold = (): Promise<void> => new Promise((r) => setTimeout(r, POLL_HOLD_MS + 100));

describe.each(dbs)('director poll path on $name', ({ config: database }) => {
  let api: ApiHarness;
  let fx: DirectorFixtures;
  let redis: Redis;
  /** The scheduler's view: an assignment repository of another process, which holds nothing of the api's. */
  let scheduler: DirectorAssignmentRepository;
  let admin: string;

  beforeAll(async () => {
    api = await startApi(databaseEnv(database));
    fx = new DirectorFixtures(api);
    redis = new Redis(process.env.OTTER_TEST_REDIS_URL!);
    scheduler = new DirectorAssignmentRepository(api.db);
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    await api.publish('images/rpi4/2.0.0', image, { hardware: 'rpi4', version: '2.0.0' });
  });
  afterAll(async () => {
    redis?.disconnect();
    await api?.close();
  });

  /** A poll of `node`'s timestamp.json by `as` (its key and, unless given, its token). */
  const poll = async (node: TestNode, as: TestNode = node, token = as.token): Promise<Response> => {
    const url = `${api.url}/tuf/director/${node.id}/metadata/timestamp.json`;
    return fetch(url, { headers: await as.key.headers('GET', url, token) });
  };
  const version = async (node: TestNode): Promise<number> => {
    const res = await poll(node);
    expect(res.status, await res.clone().text()).toBe(200);
    return ((await res.json()) as SignedEnvelope<TimestampSigned>).signed.version;
  };
  const timestampRows = async (node: TestNode): Promise<number> =>
    (
      await api.db
        .selectFrom('tuf_metadata')
        .select('version')
        .where('repository', '=', `director/${node.id}`)
        .where('role', '=', 'timestamp')
        .execute()
    ).length;

  it('sees a change another process made within the hold, and one made here at once', async () => {
    const node = await fx.node();
    const first = await version(node);

    // The scheduler (another process) assigns: held answers may still be served, but not past the hold.
    await scheduler.assign({
      nodeId: node.id,
      hardwareId: 'rpi4',
      releaseId: 'release-2.0.0',
      targetPath: 'images/rpi4/2.0.0',
      version: '2.0.0',
      sha256: signedImage.sha256,
      length: signedImage.length,
      rolloutId: 'rollout-poll',
    });
    await pastTheHold();
    const second = await version(node);
    expect(second).toBeGreaterThan(first);

    // A write through this process's own repository drops the held answer at once.
    await new Promise((r) => setTimeout(r, 1000)); // versions are unix seconds: let the next one differ
    await fx.assign(node, '2.0.0', signedImage, 'rollout-poll-2');
    expect(await version(node)).toBeGreaterThan(second);
  });

  it('confirms unchanged nodes polling together without signing anything again', async () => {
    const nodes = await Promise.all(Array.from({ length: 20 }, () => fx.node()));
    const before = await Promise.all(nodes.map(version));
    await pastTheHold();
    // Every held answer is past its hold: the 20 concurrent polls are confirmed against the database in a
    // few batched reads, none of them taking the full path.
    const director = api.app.get(DirectorRepository);
    const confirm = vi.spyOn(director, 'confirmHeld');
    const full = vi.spyOn(director, 'metadata');
    try {
      expect(await Promise.all(nodes.map(version))).toEqual(before);
      expect(full).not.toHaveBeenCalled();
      expect(confirm.mock.calls.flatMap(([ids]) => ids).sort()).toEqual(nodes.map((n) => n.id).sort());
      expect(confirm.mock.calls.length).toBeLessThan(nodes.length);
    } finally {
      confirm.mockRestore();
      full.mockRestore();
    }
    expect(await Promise.all(nodes.map(timestampRows))).toEqual(nodes.map(() => 1));
  });

  it('signs a node’s first answer with no second look at the node: the batch already read its standing', async () => {
    const nodes = await Promise.all(Array.from({ length: 5 }, () => fx.node()));
    const authenticate = vi.spyOn(api.app.get(DeviceIdentityService), 'authenticate');
    try {
      expect(await Promise.all(nodes.map(version))).toHaveLength(5);
      expect(authenticate).not.toHaveBeenCalled();
    } finally {
      authenticate.mockRestore();
    }
    expect(await Promise.all(nodes.map(timestampRows))).toEqual(nodes.map(() => 1));
  });

  it('refuses a node revoked through this process at once, even with an answer held', async () => {
    const node = await fx.node();
    await version(node);
    const res = await fetch(`${api.url}/api/v1/nodes/${node.id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.status, await res.clone().text()).toBeLessThan(300);
    const refused = await poll(node);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
  });

  it('refuses a node revoked or deactivated by another replica once the hold has passed', async () => {
    const revoked = await fx.node();
    const retired = await fx.node();
    await version(revoked);
    await version(retired);
    // Another replica's revoke (the Redis set) and another process's state change (the database only).
    await redis.sadd(`${api.config.queuePrefix}:revoked-nodes`, revoked.id);
    await api.db.updateTable('nodes').set({ state: 'revoked' }).where('id', '=', retired.id).execute();
    await pastTheHold();
    for (const node of [revoked, retired]) {
      const res = await poll(node);
      expect([node.id, res.status]).toEqual([node.id, 401]);
    }
  });

  it('never serves a held answer to another node’s token, nor for a path naming another node', async () => {
    const a = await fx.node();
    const b = await fx.node();
    await version(a);
    await version(b);
    for (const res of [await poll(a, b), await poll(b, a)]) {
      expect(res.status).toBe(403);
      expect(((await res.json()) as { code: string }).code).toBe('DIRECTOR_NODE_MISMATCH');
    }
    const forged = await poll(a, a, `${a.token.slice(0, -4)}AAAA`);
    expect(forged.status).toBe(401);
    const none = await fetch(`${api.url}/tuf/director/${a.id}/metadata/timestamp.json`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { message: string }).message).toMatch(/access token is required/);
  });
});

describe('director poll path holding nothing (OTTER_DIRECTOR_HELD_NODES=0)', () => {
  let api: ApiHarness;
  let fx: DirectorFixtures;

  beforeAll(async () => {
    api = await startApi({ OTTER_DIRECTOR_HELD_NODES: '0' });
    fx = new DirectorFixtures(api);
  });
  afterAll(async () => api?.close());

  it('answers every poll from the database, with the same signed timestamp and nothing signed again', async () => {
    const node = await fx.node();
    const director = api.app.get(DirectorRepository);
    const full = vi.spyOn(director, 'metadata');
    const bodies: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const url = `${api.url}/tuf/director/${node.id}/metadata/timestamp.json`;
        const res = await fetch(url, { headers: await node.headers('GET', url) });
        expect(res.status, await res.clone().text()).toBe(200);
        bodies.push(await res.text());
        if (i === 0) await pastTheHold();
      }
      expect(director.heldTimestamp(node.id)).toBeUndefined();
      expect(full).toHaveBeenCalledTimes(3);
    } finally {
      full.mockRestore();
    }
    expect(new Set(bodies).size).toBe(1);
  });
});
