import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase, migrateToLatest } from './create-database.js';
import { migrateTo, testDatabases, testNodeRow } from './testing.js';

// 0010_fleet_aggregates on a database whose director already signed: each node's soonest-expiry columns come
// from its newest version of each role (an older version that expires sooner does not count).
const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

describe.each(dbs)('0010_fleet_aggregates on $name', ({ config }) => {
  it('fills each node’s director expiries from its newest versions', async () => {
    const db = createDatabase(config);
    try {
      await migrateTo(db, '0009_node_inventory', config.dialect === 'postgres');
      const signed = testNodeRow();
      const unsigned = testNodeRow();
      await db.insertInto('nodes').values([signed, unsigned]).execute();
      const now = new Date().toISOString();
      const assignment = (nodeId: string) => ({
        node_id: nodeId,
        hardware_id: 'hw',
        generation: 0,
        metadata_generation: 0,
        updated_at: now,
      });
      await db
        .withTables<{ director_assignments: Record<string, unknown> }>()
        .insertInto('director_assignments')
        .values([assignment(signed.id), assignment(unsigned.id)])
        .execute();
      const row = (role: string, version: number, expiresAt: string) => ({
        repository: `director/${signed.id}`,
        role,
        version,
        expires_at: expiresAt,
        body: '{}',
        created_at: now,
      });
      await db
        .insertInto('tuf_metadata')
        .values([
          row('timestamp', 1, '2031-01-01T00:00:00.000Z'),
          row('timestamp', 2, '2031-01-02T00:00:00.000Z'),
          row('snapshot', 4, '2031-01-07T00:00:00.000Z'),
          row('targets', 4, '2031-03-01T00:00:00.000Z'),
        ])
        .execute();

      await migrateToLatest(db);

      const rows = await db
        .selectFrom('director_assignments')
        .select(['node_id', 'targets_expires_at', 'snapshot_expires_at', 'timestamp_expires_at'])
        .execute();
      expect(rows.find((r) => r.node_id === signed.id)).toEqual({
        node_id: signed.id,
        targets_expires_at: '2031-03-01T00:00:00.000Z',
        snapshot_expires_at: '2031-01-07T00:00:00.000Z',
        timestamp_expires_at: '2031-01-02T00:00:00.000Z',
      });
      expect(rows.find((r) => r.node_id === unsigned.id)).toMatchObject({ timestamp_expires_at: null });
    } finally {
      await db.destroy();
    }
  });
});
