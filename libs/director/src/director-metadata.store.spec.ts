import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, migrateToLatest, seedNodeRow, testDatabases, type Db } from '#otter/db';
import { DirectorMetadataStore, type RoleWrite } from './director-metadata.store.js';

// The soonest director expiry per role (otter_tuf_role_expiry_seconds{repository="director"}) is kept with
// each commit rather than computed over every node's rows: it must still be the soonest over the nodes'
// newest versions only, on both dialects.
const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const T0 = Date.parse('2031-01-01T00:00:00Z');
const inHours = (h: number): string => new Date(T0 + h * 3_600_000).toISOString();
const write = (role: RoleWrite['role'], version: number, hours: number): RoleWrite => ({
  role,
  version,
  expiresAt: inHours(hours),
  body: '{}',
});

describe.each(dbs)('DirectorMetadataStore.soonestExpiries on $name', ({ config }) => {
  let db: Db;
  let store: DirectorMetadataStore;

  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    store = new DirectorMetadataStore(db);
  });
  afterAll(async () => db?.destroy());

  it('has none before the director signed anything', async () => {
    expect(await store.soonestExpiries()).toEqual([]);
  });

  it('is the soonest newest version per role over every node, and the root', async () => {
    const [a, b] = [await seedNodeRow(db), await seedNodeRow(db)];
    for (const node of [a, b]) expect(await store.ensureAssignmentRow(node)).toBe(true);
    await store.insertRoot({ version: 1, expiresAt: inHours(8760), body: '{}' });
    await store.commitSet(
      a,
      0,
      [write('targets', 1, 100), write('snapshot', 1, 50), write('timestamp', 1, 2)],
      {},
    );
    await store.commitSet(
      b,
      0,
      [write('targets', 1, 90), write('snapshot', 1, 60), write('timestamp', 1, 24)],
      {},
    );
    // Node a's timestamp is re-signed alone; its older version (expiring sooner) is kept, but is not newest.
    await store.commitSet(a, 0, [write('timestamp', 2, 30)], {});

    const soonest = Object.fromEntries((await store.soonestExpiries()).map((e) => [e.role, e.expiresAt]));
    expect(soonest).toEqual({
      root: inHours(8760),
      targets: inHours(90),
      snapshot: inHours(50),
      timestamp: inHours(24),
    });
  });

  it('does not move when a commit is refused (the assignment changed meanwhile)', async () => {
    const node = await seedNodeRow(db);
    await store.ensureAssignmentRow(node);
    await expect(store.commitSet(node, 7, [write('timestamp', 1, 1)], {})).rejects.toThrow();
    const timestamp = (await store.soonestExpiries()).find((e) => e.role === 'timestamp');
    expect(timestamp?.expiresAt).toBe(inHours(24));
  });
});
