import 'reflect-metadata';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DeltaBuildDto, NodeIdentityState, SavingsDto } from '#otter/contracts';
import { seedNodeRow, testDatabases } from '#otter/db';
import { DeltaBuildRepository, deltaBuildId } from '#otter/delta-builds';
import { JOBS, QUEUES, redisOptions } from '#otter/queue';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { deviceCredentialsFor, type DeviceCredentialsForTest } from '../testing/software-device-key.js';

// The delta API against the real api, Redis and both databases, without a worker: requests are recorded and
// queued, releases queue their builds, nodes report downloads, and viewers read the totals.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.each(dbs)('delta api on $name', ({ config: database }) => {
  let api: ApiHarness;
  let queue: Queue;
  let admin: string;
  let viewer: string;
  let engineer: string;
  const images = { v1: randomBytes(3000), v2: randomBytes(4000), other: randomBytes(1000) };

  beforeAll(async () => {
    const prefix = `t${randomBytes(5).toString('hex')}`;
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: prefix,
      OTTER_DELTA_FROM_RECENT: '2',
    });
    queue = new Queue(QUEUES.deltaBuild, {
      connection: redisOptions(process.env.OTTER_TEST_REDIS_URL!),
      prefix,
    });
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    viewer = await token('viewer');
    engineer = await token('release-engineer');
    // Signed images straight into the repository (no release hook): what a delta request resolves against.
    await api.publish('images/rpi4/1.0.0', images.v1);
    await api.publish('images/rpi4/2.0.0', images.v2);
    await api.publish('images/rpi4/2.0.1', images.v2); // the same bytes as 2.0.0
    await api.publish('images/other/3.0.0', images.other);
  });
  afterAll(async () => {
    await queue?.close();
    await api?.close();
  });

  async function token(role: string): Promise<string> {
    const res = await call('POST', '/api/v1/tokens', admin, { name: `${role}-${randomUUID()}`, role });
    return ((await res.json()) as { token: string }).token;
  }

  function call(
    method: string,
    path: string,
    auth?: string,
    body?: unknown,
    type = 'application/json',
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (auth) headers.authorization = `Bearer ${auth}`;
    if (body !== undefined) headers['content-type'] = type;
    return fetch(`${api.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async function buildsAndJobs(): Promise<string> {
    const rows = await api.db.selectFrom('delta_builds').select('id').execute();
    const jobs = await queue.getJobCountByTypes('waiting', 'delayed', 'active', 'completed', 'failed');
    return JSON.stringify({ rows: rows.length, jobs });
  }

  it('queues a requested delta (202) once, however often it is asked for', async () => {
    const body = { hardware: 'rpi4', from: '1.0.0', to: '2.0.0' };
    const [a, b] = await Promise.all([
      call('POST', '/api/v1/deltas', engineer, body),
      call('POST', '/api/v1/deltas', admin, body),
    ]);
    expect([a.status, b.status]).toEqual([202, 202]);
    const first = (await a.json()) as DeltaBuildDto;
    const second = (await b.json()) as DeltaBuildDto;
    const id = deltaBuildId('rpi4', sha256(images.v1), sha256(images.v2));
    expect(first).toMatchObject({
      id,
      hardwareId: 'rpi4',
      from: { version: '1.0.0', sha256: sha256(images.v1), length: 3000 },
      to: { version: '2.0.0', sha256: sha256(images.v2), length: 4000 },
      state: 'queued',
      progress: 0,
      targetPath: 'deltas/rpi4/1.0.0-2.0.0.delta',
      patchLength: null,
      saving: null,
      error: null,
    });
    expect(second.id).toBe(id);
    expect(await api.db.selectFrom('delta_builds').select('id').where('id', '=', id).execute()).toHaveLength(
      1,
    );
    const job = await queue.getJob(id);
    expect(job?.name).toBe(JOBS.deltaPlan);
    expect(job?.data).toEqual({ buildId: id });
    expect(await queue.getJobCountByTypes('waiting')).toBe(1);

    const list = await call('GET', '/api/v1/deltas?hardware=rpi4', viewer);
    expect(list.status).toBe(200);
    expect(((await list.json()) as { deltas: DeltaBuildDto[] }).deltas.map((d) => d.id)).toEqual([id]);
    const none = await call('GET', '/api/v1/deltas?hardware=other', viewer);
    expect(((await none.json()) as { deltas: DeltaBuildDto[] }).deltas).toEqual([]);
  });

  it('refuses requests without the release-engineer role, and bad pairs with a 4xx, changing nothing', async () => {
    const before = await buildsAndJobs();
    const ok = { hardware: 'rpi4', from: '1.0.0', to: '2.0.0' };
    expect((await call('POST', '/api/v1/deltas', undefined, ok)).status).toBe(401);
    expect((await call('POST', '/api/v1/deltas', 'otr_forged', ok)).status).toBe(401);
    expect((await call('POST', '/api/v1/deltas', viewer, ok)).status).toBe(403);
    expect((await call('GET', '/api/v1/deltas')).status).toBe(401);
    const bad: Array<[string, unknown, number, RegExp, string?]> = [
      ['an unknown release', { hardware: 'rpi4', from: '1.0.0', to: '9.9.9' }, 404, /no release 9\.9\.9/],
      ['the same release twice', { hardware: 'rpi4', from: '2.0.0', to: '2.0.0' }, 400, /different/],
      [
        'a release of another hardware id',
        { hardware: 'rpi4', from: '1.0.0', to: '3.0.0' },
        404,
        /no release 3\.0\.0/,
      ],
      ['two versions of one image', { hardware: 'rpi4', from: '2.0.0', to: '2.0.1' }, 400, /same image/],
      [
        'a hardware id with a path in it',
        { hardware: '../rpi4', from: '1.0.0', to: '2.0.0' },
        400,
        /hardware/,
      ],
      ['a version that is not semver', { hardware: 'rpi4', from: 'v1', to: '2.0.0' }, 400, /from/],
      ['an unknown field', { ...ok, force: true }, 400, /force/],
      ['a missing field', { hardware: 'rpi4', from: '1.0.0' }, 400, /to/],
      ['a form body', 'hardware=rpi4&from=1.0.0&to=2.0.0', 415, /json/, 'application/x-www-form-urlencoded'],
    ];
    for (const [what, body, status, message, type] of bad) {
      const res = await call('POST', '/api/v1/deltas', engineer, body, type);
      const error = (await res.json()) as { message: string };
      expect(res.status, what).toBe(status);
      expect(error.message, what).toMatch(message);
    }
    expect((await call('GET', '/api/v1/deltas?hardware=..%2Fx', viewer)).status).toBe(400);
    expect(await buildsAndJobs()).toBe(before);
  });

  it('queues deltas to a new release from the fleet’s versions (most common first) and recent releases', async () => {
    const hw = 'fleet';
    const release = async (version: string): Promise<void> => {
      const form = new FormData();
      form.append('hardware', hw);
      form.append('version', version);
      form.append('image', new Blob([new Uint8Array(randomBytes(2000))]), 'image.bin');
      const res = await fetch(`${api.url}/api/v1/releases`, {
        method: 'POST',
        body: form,
        headers: { authorization: `Bearer ${engineer}` },
      });
      expect(res.status).toBe(201);
    };
    for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0']) await release(v);
    await seedNode(hw, 'active', '1.1.0');
    await seedNode(hw, 'active', '1.0.0');
    await seedNode(hw, 'active', '1.0.0');
    await seedNode(hw, 'revoked', '1.2.0'); // not active: not counted
    await seedNode(hw, 'active', '0.0.1'); // not a release: skipped
    const before = new Set((await deltas(hw)).map((d) => d.id));
    await release('2.0.0');
    const planned = (await deltas(hw)).filter((d) => !before.has(d.id)).reverse(); // oldest first
    // Fleet first (1.0.0 by two nodes, then 1.1.0), then the two most recent earlier releases (1.3.0, 1.2.0).
    expect(planned.map((d) => `${d.from.version}->${d.to.version}`)).toEqual([
      '1.0.0->2.0.0',
      '1.1.0->2.0.0',
      '1.3.0->2.0.0',
      '1.2.0->2.0.0',
    ]);
    // Recorded before the release answers; queued in the background (a release never waits for Redis).
    for (const d of planned) {
      expect(d.state).toBe('queued');
      await vi.waitFor(async () => expect((await queue.getJob(d.id))?.name).toBe(JOBS.deltaPlan));
    }
    // Every earlier release queued its own deltas from up to two releases before it.
    expect(
      (await deltas(hw))
        .filter((d) => d.to.version === '1.3.0')
        .map((d) => d.from.version)
        .sort(),
    ).toEqual(['1.1.0', '1.2.0']);
  });

  async function deltas(hardware: string): Promise<DeltaBuildDto[]> {
    return (
      (await (await call('GET', `/api/v1/deltas?hardware=${hardware}`, viewer)).json()) as {
        deltas: DeltaBuildDto[];
      }
    ).deltas;
  }

  function seedNode(hardware: string, state: NodeIdentityState, runningVersion: string): Promise<string> {
    return seedNodeRow(api.db, { hardwareId: hardware, state, runningVersion });
  }

  it('records nodes’ downloads and totals the bytes saved per release and per node', async () => {
    const a = await seedNode('rpi4', 'active', '1.0.0');
    const b = await seedNode('rpi4', 'active', '1.0.0');
    const tokenA = await deviceCredentialsFor(api.app, a);
    const tokenB = await deviceCredentialsFor(api.app, b);
    const deltaPath = 'deltas/rpi4/1.0.0-2.0.0.delta';
    const id = deltaBuildId('rpi4', sha256(images.v1), sha256(images.v2));
    /** As a node (its token and a DPoP proof), or with a plain bearer token. */
    const report = async (
      auth: DeviceCredentialsForTest | string | undefined,
      body: unknown,
    ): Promise<Response> => {
      if (typeof auth !== 'object') return call('POST', '/api/v1/devices/me/downloads', auth, body);
      const url = `${api.url}/api/v1/devices/me/downloads`;
      return fetch(url, {
        method: 'POST',
        headers: { ...(await auth.headers('POST', url)), 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    };
    const forgedA: DeviceCredentialsForTest = {
      ...tokenA,
      headers: (method, url) => tokenA.key.headers(method, url, `${tokenA.token.slice(0, -4)}AAAA`),
    };
    const delta = { targetPath: deltaPath, method: 'delta', bytesDownloaded: 600, fullBytes: 4000 };

    // Not published yet: nothing to report against.
    expect((await report(tokenA, delta)).status).toBe(404);
    await api.app
      .get(DeltaBuildRepository)
      .markPublished(id, { length: 600, sha256: 'ab'.repeat(32), blobKey: 'x' });

    expect((await report(tokenA, delta)).status).toBe(202);
    const full = { targetPath: 'images/rpi4/2.0.0', method: 'full', bytesDownloaded: 4000, fullBytes: 4000 };
    expect((await report(tokenB, full)).status).toBe(202);
    expect((await report(tokenA, { ...delta, bytesDownloaded: 700 })).status).toBe(202);

    // Attacks and bad input: all refused, nothing recorded.
    const count = async (): Promise<number> =>
      (await api.db.selectFrom('downloads').select('id').execute()).length;
    const recorded = await count();
    const refused: Array<[string, DeviceCredentialsForTest | string | undefined, unknown, number]> = [
      ['no token', undefined, delta, 401],
      ['an API token instead of a device token', admin, delta, 401],
      ['a forged device token', forgedA, delta, 401],
      ['another hardware id', tokenA, { ...full, targetPath: 'images/other/3.0.0', fullBytes: 1000 }, 403],
      ['a wrong full size', tokenA, { ...delta, fullBytes: 1 }, 400],
      ['an unknown image', tokenA, { ...full, targetPath: 'images/rpi4/7.7.7' }, 404],
      ['an unknown delta', tokenA, { ...delta, targetPath: 'deltas/rpi4/0.0.1-2.0.0.delta' }, 404],
      ['a method that does not match the target', tokenA, { ...delta, method: 'full' }, 400],
      ['negative bytes', tokenA, { ...delta, bytesDownloaded: -1 }, 400],
      ['fractional bytes', tokenA, { ...delta, bytesDownloaded: 1.5 }, 400],
      ['an unknown method', tokenA, { ...delta, method: 'torrent' }, 400],
    ];
    for (const [what, auth, body, status] of refused) {
      expect((await report(auth, body)).status, what).toBe(status);
    }
    expect(await count()).toBe(recorded);

    expect((await call('GET', '/api/v1/savings')).status).toBe(401);
    const res = await call('GET', '/api/v1/savings?hardware=rpi4', viewer);
    expect(res.status).toBe(200);
    const savings = (await res.json()) as SavingsDto;
    expect(savings.releases).toEqual([
      {
        hardwareId: 'rpi4',
        version: '2.0.0',
        downloads: 3,
        bytesDownloaded: 5300,
        fullBytes: 12000,
        bytesSaved: 6700,
      },
    ]);
    expect(savings.nodes.sort((x, y) => x.downloads - y.downloads)).toEqual([
      { nodeId: b, downloads: 1, bytesDownloaded: 4000, fullBytes: 4000, bytesSaved: 0 },
      { nodeId: a, downloads: 2, bytesDownloaded: 1300, fullBytes: 8000, bytesSaved: 6700 },
    ]);
    const other = (await (await call('GET', '/api/v1/savings?hardware=other', viewer)).json()) as SavingsDto;
    expect(other).toEqual({ releases: [], nodes: [] });
  });

  it('refuses bytesDownloaded above the full image, near 2^53 and past it: 400 with the reason, nothing stored', async () => {
    const node = await seedNode('rpi4', 'active', '1.0.0');
    const device = await deviceCredentialsFor(api.app, node);
    /** A download report as the node (its bound token and a fresh DPoP proof); a string body is sent as is. */
    const report = async (body: unknown): Promise<Response> => {
      const url = `${api.url}/api/v1/devices/me/downloads`;
      return fetch(url, {
        method: 'POST',
        headers: { ...(await device.headers('POST', url)), 'content-type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    };
    const full = { targetPath: 'images/rpi4/2.0.0', method: 'full', bytesDownloaded: 4000, fullBytes: 4000 };
    const deltaPath = 'deltas/rpi4/1.0.0-2.0.0.delta';
    await api.app
      .get(DeltaBuildRepository)
      .markPublished(deltaBuildId('rpi4', sha256(images.v1), sha256(images.v2)), {
        length: 600,
        sha256: 'ab'.repeat(32),
        blobKey: 'x',
      });
    const delta = { targetPath: deltaPath, method: 'delta', bytesDownloaded: 600, fullBytes: 4000 };
    const stored = () => api.db.selectFrom('downloads').selectAll().orderBy('id').execute();
    const totals = async () => (await call('GET', '/api/v1/savings', viewer)).json();
    const before = { rows: await stored(), totals: await totals() };

    const attacks: Array<[string, unknown, RegExp]> = [
      [
        'one byte more than the image',
        { ...full, bytesDownloaded: 4001 },
        /at most the full image's 4000 bytes/,
      ],
      [
        'a delta report above the image',
        { ...delta, bytesDownloaded: 4001 },
        /at most the full image's 4000/,
      ],
      ['2^53 - 1', { ...full, bytesDownloaded: Number.MAX_SAFE_INTEGER }, /at most the full image's 4000/],
      ['2^53, past the safe integers', { ...full, bytesDownloaded: 2 ** 53 }, /bytesDownloaded/],
      ['2^64', { ...full, bytesDownloaded: 2 ** 64 }, /bytesDownloaded/],
      [
        'a fullBytes of 2^53 to raise the bound',
        { ...full, bytesDownloaded: 2 ** 52, fullBytes: 2 ** 53 },
        /fullBytes/,
      ],
    ];
    for (const [what, body, reason] of attacks) {
      const res = await report(body);
      expect(res.status, what).toBe(400);
      expect(((await res.json()) as { message: string }).message, what).toMatch(reason);
    }
    // Numbers JSON.stringify cannot send: past a double's range (Infinity once parsed), and 2^53 + 1.
    for (const raw of ['1e400', '9007199254740993']) {
      const body = `{"targetPath":"images/rpi4/2.0.0","method":"full","bytesDownloaded":${raw},"fullBytes":4000}`;
      expect((await report(body)).status, raw).toBe(400);
    }
    expect(await stored()).toEqual(before.rows);
    expect(await totals()).toEqual(before.totals);

    // The honest report at the bound is taken.
    expect((await report(full)).status).toBe(202);
  });
});
