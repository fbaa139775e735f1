import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedNodeRow, createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import {
  createRootDraft,
  Ed25519Signer,
  OnlineKeyStore,
  signRoot,
  tufExpiry,
  verifySignature,
  type RootSigned,
  type SignedEnvelope,
  type SnapshotSigned,
  type TargetsSigned,
  type TimestampSigned,
} from '#otter/tuf-signing';
import { DirectorAssignmentRepository } from './director-assignment.repository.js';
import { DirectorMetadataStore } from './director-metadata.store.js';
import { DirectorRoot } from './director-root.js';
import { DirectorRepository, POLL_HOLD_MS } from './director.repository.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const TTL = { rootTtl: 365 * 86_400, targetsTtl: 90 * 86_400, snapshotTtl: 7 * 86_400, timestampTtl: 86_400 };
const T0 = Date.parse('2031-01-01T00:00:00Z');

describe.each(dbs)('DirectorRepository on $name', ({ config }) => {
  const keysDir = join(mkdtempSync(join(tmpdir(), 'otter-director-')), 'keys');
  const devRoot = Ed25519Signer.generate();
  const dbsOpen: Db[] = [];
  let db: Db;
  let clock = T0;
  let director: DirectorRepository;
  let assignments: DirectorAssignmentRepository;

  /**
   * One api replica: its own connection pool and key cache, the same database and key file. SQLite replicas
   * share the one connection: better-sqlite3 is synchronous, so two connections in one process would block
   * each other's locks (separate processes do not).
   */
  function replica(): DirectorRepository {
    const own = config.dialect === 'postgres' ? createDatabase(config) : db;
    if (own !== db) dbsOpen.push(own);
    const store = new DirectorMetadataStore(own);
    const keys = new OnlineKeyStore(keysDir, 'director', 'test-passphrase-123');
    return new DirectorRepository(store, new DirectorRoot(store, keys, TTL), TTL, () => clock);
  }

  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    director = replica();
    assignments = new DirectorAssignmentRepository(db);
  });
  afterAll(async () => Promise.all([db, ...dbsOpen].map((d) => d.destroy())));

  function seedNode(hardwareId = 'rpi4'): Promise<string> {
    return seedNodeRow(db, { hardwareId });
  }

  function assign(nodeId: string, version: string, sha = 'c'.repeat(64), rolloutId: string | null = 'r1') {
    return assignments.assign({
      nodeId,
      hardwareId: 'rpi4',
      releaseId: `rel-${version}`,
      targetPath: `images/rpi4/${version}`,
      version,
      sha256: sha,
      length: 1234,
      rolloutId,
    });
  }

  async function poll(nodeId: string, on = director) {
    const ts = JSON.parse(
      (await on.metadata(nodeId, 'timestamp.json')).body,
    ) as SignedEnvelope<TimestampSigned>;
    const snapVersion = ts.signed.meta['snapshot.json'].version;
    const snap = JSON.parse(
      (await on.metadata(nodeId, `${snapVersion}.snapshot.json`)).body,
    ) as SignedEnvelope<SnapshotSigned>;
    const targetsVersion = snap.signed.meta['targets.json']!.version;
    const targets = JSON.parse(
      (await on.metadata(nodeId, `${targetsVersion}.targets.json`)).body,
    ) as SignedEnvelope<TargetsSigned>;
    return { ts, snap, targets };
  }

  async function rows(nodeId: string): Promise<Array<{ role: string; version: number }>> {
    const r = await db
      .selectFrom('tuf_metadata')
      .select(['role', 'version'])
      .where('repository', '=', `director/${nodeId}`)
      .orderBy('role')
      .orderBy('version')
      .execute();
    return r.map((x) => ({ role: x.role, version: Number(x.version) }));
  }

  it('answers nothing before its root exists, then signs one set per node lazily on its first poll', async () => {
    const node = await seedNode();
    await expect(director.metadata(node, 'timestamp.json')).rejects.toMatchObject({
      code: 'DIRECTOR_NOT_INITIALIZED',
    });
    expect(await director.initializeWithDevRoot(devRoot)).toBe(true);
    expect(await replica().initializeWithDevRoot(devRoot)).toBe(false);
    await expect(director.metadata(randomUUID(), 'timestamp.json')).rejects.toMatchObject({
      code: 'DIRECTOR_NODE_NOT_FOUND',
    });
    expect(await rows(node)).toEqual([]);

    const first = await poll(node);
    const root = (await director.currentRoot()).signed;
    expect(first.targets.signed.targets).toEqual({});
    expect(first.ts.signed.version).toBe(T0 / 1000);
    for (const [role, md] of [
      ['timestamp', first.ts],
      ['snapshot', first.snap],
      ['targets', first.targets],
    ] as const) {
      const sig = md.signatures[0]!;
      expect(root.roles[role].keyids).toContain(sig.keyid);
      expect(verifySignature(root.keys[sig.keyid]!, md.signed, sig)).toBe(true);
    }
    // Nothing changed: the same bytes, and no new rows.
    const again = await director.metadata(node, 'timestamp.json');
    expect(JSON.parse(again.body)).toEqual(first.ts);
    expect(await rows(node)).toHaveLength(3);
  });

  it('names the assigned image with its node, hardware, release and rollout once the node polls again', async () => {
    const node = await seedNode();
    const before = await poll(node);
    await assign(node, '2.4.0');
    const after = await poll(node);
    expect(after.ts.signed.version).toBe(before.ts.signed.version + 1);
    expect(after.targets.signed.targets).toEqual({
      'images/rpi4/2.4.0': {
        length: 1234,
        hashes: { sha256: 'c'.repeat(64) },
        custom: { nodeId: node, hardwareId: 'rpi4', releaseVersion: '2.4.0', correlationId: 'r1' },
      },
    });
    expect((await assignments.get(node))?.metadataGeneration).toBe(1);
    await assignments.clear(node);
    expect((await poll(node)).targets.signed.targets).toEqual({});
  });

  it('never goes backwards: previous + 1 within a second, the clock after the rows are lost', async () => {
    const node = await seedNode();
    const versions: number[] = [];
    for (const v of ['1.0.0', '1.0.1', '1.0.2']) {
      await assign(node, v);
      versions.push((await poll(node)).ts.signed.version);
    }
    expect(versions).toEqual([T0 / 1000, T0 / 1000 + 1, T0 / 1000 + 2]);
    // Old sets are pruned: the current and the one before it stay for clients mid-poll.
    expect((await rows(node)).filter((r) => r.role === 'timestamp').map((r) => r.version)).toEqual([
      T0 / 1000 + 1,
      T0 / 1000 + 2,
    ]);

    // A database restored from an older backup lost these rows; time has passed since.
    await db.deleteFrom('tuf_metadata').where('repository', '=', `director/${node}`).execute();
    clock = T0 + 3_600_000;
    try {
      const restored = await poll(node);
      expect(restored.ts.signed.version).toBe(T0 / 1000 + 3600);
      expect(restored.targets.signed.targets['images/rpi4/1.0.2']).toBeDefined();
    } finally {
      clock = T0;
    }
  });

  it('re-signs a node’s set once a role is within half its lifetime of expiry, not before', async () => {
    const node = await seedNode();
    const first = await poll(node);
    clock = T0 + (TTL.timestampTtl / 2 - 60) * 1000;
    try {
      expect((await poll(node)).ts).toEqual(first.ts);
      clock = T0 + (TTL.timestampTtl / 2 + 1) * 1000;
      const later = await poll(node);
      expect(later.ts.signed.version).toBeGreaterThan(first.ts.signed.version);
      expect(Date.parse(later.ts.signed.expires)).toBe(clock - (clock % 1000) + TTL.timestampTtl * 1000);
    } finally {
      clock = T0;
    }
  });

  it('serves a changed assignment at once even when it holds the node’s timestamp', async () => {
    const node = await seedNode();
    await poll(node);
    await poll(node); // held now
    await assign(node, '3.0.0', 'd'.repeat(64));
    expect(Object.keys((await poll(node)).targets.signed.targets)).toEqual(['images/rpi4/3.0.0']);
    // Another replica signed a newer set: this one must not serve its held copy.
    const other = replica();
    await assign(node, '3.0.1', 'e'.repeat(64));
    const fromOther = await poll(node, other);
    expect((await poll(node)).ts).toEqual(fromOther.ts);
  });

  it('refuses unknown files with DIRECTOR_METADATA_NOT_FOUND', async () => {
    const node = await seedNode();
    await poll(node);
    for (const name of [
      'root.json',
      '0.root.json',
      '99.root.json',
      '1.timestamp.json',
      'x.targets.json',
      '1.images.json',
      '../1.root.json',
      '99999999999.root.json',
    ]) {
      await expect(director.metadata(node, name)).rejects.toMatchObject({
        code: 'DIRECTOR_METADATA_NOT_FOUND',
      });
    }
    await expect(director.metadata('../etc', 'timestamp.json')).rejects.toMatchObject({
      code: 'DIRECTOR_METADATA_NOT_FOUND',
    });
  });

  it('two replicas polling one node at once store distinct versions and serve a consistent set', async () => {
    const node = await seedNode();
    const replicas = [director, replica(), replica()];
    for (const v of ['4.0.0', '4.0.1', '4.0.2']) {
      await assign(node, v, randomBytes(32).toString('hex'));
      const seen = await Promise.all(replicas.flatMap((r) => [poll(node, r), poll(node, r)]));
      for (const s of seen) {
        expect(s.ts.signed.meta['snapshot.json'].version).toBe(s.snap.signed.version);
        expect(Object.keys(s.targets.signed.targets)).toEqual([`images/rpi4/${v}`]);
      }
    }
    expect((await assignments.get(node))?.metadataGeneration).toBe(3);
  });

  it('after a root rotation re-signs each node with the keys the new root names, on its next poll', async () => {
    const node = await seedNode();
    const before = await poll(node);
    const pending = await director.rotateOnlineKey('timestamp');
    expect((await poll(node)).ts).toEqual(before.ts);
    const current = (await director.currentRoot()).signed;
    const draft = createRootDraft({
      previous: current,
      rootKeys: [devRoot.tufKey],
      rootThreshold: 1,
      onlineKeys: await director.preferredOnlineKeys(),
      expires: tufExpiry(Date.now() + 86_400_000),
    });
    // Unsigned by the current root key: refused like the image repository refuses it.
    await expect(director.publishRoot(draft)).rejects.toMatchObject({ code: 'DIRECTOR_ROOT_REJECTED' });
    const root: RootSigned = await director.publishRoot(signRoot(draft, devRoot));
    expect(root.roles.timestamp.keyids).toEqual([pending.keyId]);
    const after = await poll(node);
    expect(after.ts.signatures.map((s) => s.keyid)).toEqual([pending.keyId]);
    expect(after.ts.signed.version).toBeGreaterThan(before.ts.signed.version);
    expect((await director.onlineKeys()).filter((k) => k.role === 'timestamp')).toEqual([
      expect.objectContaining({ keyId: pending.keyId, active: true }),
    ]);
    expect((await director.metadata(node, `${root.version}.root.json`)).body).toContain(pending.keyId);
  });
  it('holds a served timestamp for POLL_HOLD_MS, and confirms held ones in one read only while unchanged', async () => {
    const [same, moved, resigned, neverPolled] = [
      await seedNode(),
      await seedNode(),
      await seedNode(),
      await seedNode(),
    ];
    for (const node of [same, moved, resigned]) await poll(node);
    const served = (await director.metadata(same, 'timestamp.json')).body;
    expect(director.heldTimestamp(same)).toBe(served);
    clock += POLL_HOLD_MS;
    expect(director.heldTimestamp(same)).toBeUndefined();

    // Changed elsewhere: the scheduler moved one node; another replica re-signed another's rows.
    await assign(moved, '9.0.0');
    await db.deleteFrom('tuf_metadata').where('repository', '=', `director/${resigned}`).execute();
    await replica().metadata(resigned, 'timestamp.json');
    expect(await director.confirmHeld([same, moved, resigned, neverPolled])).toEqual(new Set([same]));
    expect(director.heldTimestamp(same)).toBe(served);
    expect(director.heldTimestamp(moved)).toBeUndefined();

    // A node refused by the caller loses its held answer; nothing is held past the point of re-signing.
    director.forgetHeld(same);
    expect(director.heldTimestamp(same)).toBeUndefined();
    await poll(same);
    clock += 12 * 3_600_000; // half the timestamp's lifetime: due for re-signing
    expect(director.heldTimestamp(same)).toBeUndefined();
    expect(await director.confirmHeld([same])).toEqual(new Set());
  });
});
