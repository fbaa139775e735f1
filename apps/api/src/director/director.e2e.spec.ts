import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '#otter/db';
import type { RootSigned, SignedEnvelope, TargetsSigned, TimestampSigned } from '#otter/tuf-signing';
import { ResumableFetcher } from '#otter/tuf-client';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { databaseEnv } from './testing/database-env.js';
import { DirectorFixtures, type TestNode } from './testing/director-fixtures.js';

// The director against the real api and a stock tuf-js Updater, on both databases.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const image = randomBytes(5000);
const signedImage = { sha256: sha256(image), length: image.length };

/** A device's view of its director metadata, kept in `dir` between polls, as an agent keeps it. */
class DirectorClient {
  readonly dir = mkdtempSync(join(tmpdir(), 'otter-director-client-'));

  constructor(
    private readonly api: ApiHarness,
    private readonly node: TestNode,
    root: string,
  ) {
    writeFileSync(join(this.dir, 'root.json'), root);
  }

  /** One poll: a fresh Updater (single use), the target it verifies for `path`, if any. */
  async poll(path?: string): Promise<Record<string, unknown> | undefined> {
    const updater = new Updater({
      metadataDir: this.dir,
      metadataBaseUrl: `${this.api.url}/tuf/director/${this.node.id}/metadata`,
      fetcher: new ResumableFetcher({ requestHeaders: (url) => this.node.headers('GET', url) }),
    });
    await updater.refresh();
    if (path === undefined) return undefined;
    const info = await updater.getTargetInfo(path);
    return info && { length: info.length, hashes: info.hashes, custom: info.custom };
  }

  trusted<T extends SignedEnvelope>(role: string): T {
    return JSON.parse(readFileSync(join(this.dir, `${role}.json`), 'utf8')) as T;
  }
}

async function untilSecondAfter(version: number): Promise<void> {
  const wait = (version + 1) * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait + 5));
}

describe.each(dbs)('director repository on $name', ({ config: database }) => {
  let api: ApiHarness;
  let fx: DirectorFixtures;
  let admin: string;

  beforeAll(async () => {
    api = await startApi(databaseEnv(database));
    fx = new DirectorFixtures(api);
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    await api.publish('images/rpi4/2.0.0', image, { hardware: 'rpi4', version: '2.0.0' });
  });
  afterAll(async () => api?.close());

  async function client(node: TestNode): Promise<DirectorClient> {
    return new DirectorClient(
      api,
      node,
      await fx.text(`/tuf/director/${node.id}/metadata/1.root.json`, node),
    );
  }

  /** GET `path` with `token`: as a node with its DPoP proof when `node` is given, else as a bearer token. */
  async function get(path: string, token?: string, node?: TestNode): Promise<Response> {
    const url = `${api.url}${path}`;
    if (token === undefined) return fetch(url);
    const headers = node ? await node.key.headers('GET', url, token) : { authorization: `Bearer ${token}` };
    return fetch(url, { headers });
  }

  it('serves a node its own metadata, signed lazily, and nothing of another node’s', async () => {
    const a = await fx.node();
    const b = await fx.node();
    const agent = await client(a);
    await agent.poll();
    expect(agent.trusted<SignedEnvelope<TargetsSigned>>('targets').signed.targets).toEqual({});

    const own = await get(`/tuf/director/${a.id}/metadata/timestamp.json`, a.token, a);
    expect(own.status).toBe(200);
    expect(own.headers.get('cache-control')).toBe('private, no-cache');

    const cases: Array<[string, string | undefined, number, string?]> = [
      [`/tuf/director/${b.id}/metadata/timestamp.json`, a.token, 403, 'DIRECTOR_NODE_MISMATCH'],
      [`/tuf/director/${b.id}/metadata/1.root.json`, a.token, 403, 'DIRECTOR_NODE_MISMATCH'],
      [`/tuf/director/${a.id}/metadata/timestamp.json`, undefined, 401],
      [`/tuf/director/${a.id}/metadata/timestamp.json`, admin, 401],
      [`/tuf/director/${a.id}/metadata/timestamp.json`, `${a.token.slice(0, -4)}AAAA`, 401],
      [`/tuf/director/${a.id}/metadata/root.json`, a.token, 404, 'DIRECTOR_METADATA_NOT_FOUND'],
      [`/tuf/director/${a.id}/metadata/2.root.json`, a.token, 404, 'DIRECTOR_METADATA_NOT_FOUND'],
      [`/tuf/director/${a.id}/metadata/1.root.json.bak`, a.token, 404, 'DIRECTOR_METADATA_NOT_FOUND'],
      [`/tuf/director/${a.id}/metadata/1.images.json`, a.token, 404, 'DIRECTOR_METADATA_NOT_FOUND'],
      [`/tuf/director/${a.id}/metadata/99.targets.json`, a.token, 404, 'DIRECTOR_METADATA_NOT_FOUND'],
    ];
    for (const [path, token, status, code] of cases) {
      const res = await get(path, token, a);
      expect([path, res.status]).toEqual([path, status]);
      const body = (await res.json()) as { code: string; message: string };
      if (code) expect(body.code).toBe(code);
      if (status === 403) expect(body.message).toMatch(/only its own/);
    }
    // Node b's metadata was never asked for by b: nothing was signed for it.
    expect(
      await api.db
        .selectFrom('tuf_metadata')
        .select('role')
        .where('repository', '=', `director/${b.id}`)
        .execute(),
    ).toEqual([]);
  });

  it('names a changed assignment on the node’s next poll, with node, hardware, release and rollout', async () => {
    const node = await fx.node();
    const agent = await client(node);
    await agent.poll();
    const before = agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version;

    const assignment = await fx.assign(node, '2.0.0', signedImage, 'rollout-7');
    // Lazy: nothing is signed until the node polls.
    expect(assignment.metadataGeneration).toBe(0);
    expect(await agent.poll('images/rpi4/2.0.0')).toEqual({
      length: image.length,
      hashes: { sha256: signedImage.sha256 },
      custom: { nodeId: node.id, hardwareId: 'rpi4', releaseVersion: '2.0.0', correlationId: 'rollout-7' },
    });
    expect(agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version).toBeGreaterThan(
      before,
    );

    await agent.poll(); // unchanged: the same versions
    const same = agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version;
    await agent.poll();
    expect(agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version).toBe(same);
  });

  it('never goes backwards after its rows are lost, and recovers a restored backup once invalidated', async () => {
    const node = await fx.node();
    const agent = await client(node);
    await fx.assign(node, '2.0.0', signedImage);
    await agent.poll();
    const backup = await api.db
      .selectFrom('tuf_metadata')
      .selectAll()
      .where('repository', '=', `director/${node.id}`)
      .execute();
    const backupAssignment = await api.db
      .selectFrom('director_assignments')
      .selectAll()
      .where('node_id', '=', node.id)
      .executeTakeFirstOrThrow();

    // The rows are lost: regenerated on the next poll with a version the device has never seen.
    await api.db.deleteFrom('tuf_metadata').where('repository', '=', `director/${node.id}`).execute();
    api.invalidateCaches();
    const trusted = agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version;
    await untilSecondAfter(trusted);
    expect(await agent.poll('images/rpi4/2.0.0')).toBeDefined();
    expect(agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version).toBeGreaterThan(
      trusted,
    );

    // A restored backup brings back older rows and the assignment as it was: the device refuses them...
    await fx.assign(node, '2.0.0', signedImage, 'rollout-after-backup');
    await agent.poll();
    await api.db.deleteFrom('tuf_metadata').where('repository', '=', `director/${node.id}`).execute();
    await api.db.insertInto('tuf_metadata').values(backup).execute();
    await api.db
      .updateTable('director_assignments')
      .set(backupAssignment)
      .where('node_id', '=', node.id)
      .execute();
    api.invalidateCaches();
    await expect(agent.poll()).rejects.toThrow(/version/i);
    // ...until an admin tells the director the database was restored: every node is re-signed, newer.
    const res = await fetch(`${api.url}/api/v1/tuf/director/metadata/invalidate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { nodes: number }).nodes).toBeGreaterThan(0);
    await untilSecondAfter(agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version);
    expect(await agent.poll('images/rpi4/2.0.0')).toMatchObject({ custom: { correlationId: 'rollout-1' } });
  });

  it('lets only an admin publish a director root, and checks it like the image repository does', async () => {
    const node = await fx.node();
    expect((await fetch(`${api.url}/api/v1/tuf/director/root`)).status).toBe(401);
    const root = await fetch(`${api.url}/api/v1/tuf/director/root`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(root.status).toBe(200);
    const keys = await fetch(`${api.url}/api/v1/tuf/director/online-keys`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    const online = (await keys.json()) as { keys: Array<{ role: string; active: boolean }> };
    expect(
      online.keys
        .filter((k) => k.active)
        .map((k) => k.role)
        .sort(),
    ).toEqual(['snapshot', 'targets', 'timestamp']);
    // The director's online keys are its own: none of them signs for the image repository.
    const imageRoot = await fx.json<SignedEnvelope<RootSigned>>('/tuf/image/metadata/1.root.json');
    const directorRoot = await fx.json<SignedEnvelope<RootSigned>>(
      `/tuf/director/${node.id}/metadata/1.root.json`,
      node,
    );
    const onlineIds = (r: SignedEnvelope<RootSigned>): string[] =>
      (['targets', 'snapshot', 'timestamp'] as const).flatMap((role) => r.signed.roles[role].keyids);
    expect(onlineIds(directorRoot).filter((id) => onlineIds(imageRoot).includes(id))).toEqual([]);

    const unsigned = await fetch(`${api.url}/api/v1/tuf/director/root`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ signatures: [], signed: { ...directorRoot.signed, version: 2 } }),
    });
    expect(unsigned.status).toBe(422);
    expect(((await unsigned.json()) as { code: string }).code).toBe('DIRECTOR_ROOT_REJECTED');
  });
});

describe.each(await testDatabases())('director re-signing on $name', ({ config: database, drop }) => {
  let api: ApiHarness;
  let fx: DirectorFixtures;

  beforeAll(async () => {
    // Six-second timestamps: re-signed by the poll that comes once less than half of that is left. Expiry is
    // whole seconds (up to 1 s lost), so two polls in a row have at least 2 s to fall before that point.
    api = await startApi({ ...databaseEnv(database), OTTER_TUF_TIMESTAMP_TTL: '6' });
    fx = new DirectorFixtures(api);
  });
  afterAll(async () => {
    await api?.close();
    await drop();
  });

  it('re-signs a node’s metadata before it expires, on the node’s poll', async () => {
    const node = await fx.node();
    const agent = new DirectorClient(
      api,
      node,
      await fx.text(`/tuf/director/${node.id}/metadata/1.root.json`, node),
    );
    await agent.poll();
    const first = agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed;
    await agent.poll();
    expect(agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed.version).toBe(first.version);
    await new Promise((r) => setTimeout(r, 3_100));
    await agent.poll();
    const later = agent.trusted<SignedEnvelope<TimestampSigned>>('timestamp').signed;
    expect(later.version).toBeGreaterThan(first.version);
    expect(Date.parse(later.expires)).toBeGreaterThan(Date.parse(first.expires));
  });
});
