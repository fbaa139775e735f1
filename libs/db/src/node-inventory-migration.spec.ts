import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase, migrateToLatest } from './create-database.js';
import { migrateTo, testDatabases, testNodeRow } from './testing.js';

// 0009_node_inventory on a database that already holds nodes: each node's newest verdict lands on its row,
// its operator labels become node_labels rows, and a node with neither gets none.
const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

describe.each(dbs)('0009_node_inventory on $name', ({ config }) => {
  it('carries each node’s newest verdict and its labels over', async () => {
    const db = createDatabase(config);
    try {
      await migrateTo(db, '0007_node_policy', config.dialect === 'postgres');
      const labelled = testNodeRow({ labels: { site: 'north', 'ring/x': 'canary' } });
      const bare = testNodeRow();
      await db.insertInto('nodes').values([labelled, bare]).execute();
      const verdict = (passed: boolean, reason: string, at: string) => ({
        id: randomUUID(),
        node_id: labelled.id,
        passed: passed ? 1 : 0,
        reason,
        pcr_values: '{}',
        release_version: null,
        created_at: at,
      });
      await db
        .withTables<{ attestation_verdicts: Record<string, unknown> }>()
        .insertInto('attestation_verdicts')
        .values([
          verdict(true, 'older pass', '2026-12-01T00:00:00.000Z'),
          verdict(false, 'newest: PCR 7 differs', '2026-12-03T00:00:00.000Z'),
          verdict(true, 'middle pass', '2026-12-02T00:00:00.000Z'),
        ])
        .execute();

      await migrateToLatest(db);

      const rows = await db
        .selectFrom('nodes')
        .select(['id', 'last_verdict_passed', 'last_verdict_reason', 'last_verdict_at', 'last_seen_at'])
        .execute();
      const byId = new Map(rows.map((r) => [r.id, r]));
      expect(byId.get(labelled.id)).toMatchObject({
        last_verdict_reason: 'newest: PCR 7 differs',
        last_verdict_at: '2026-12-03T00:00:00.000Z',
        last_seen_at: null,
      });
      expect(Number(byId.get(labelled.id)!.last_verdict_passed)).toBe(0);
      expect(byId.get(bare.id)).toMatchObject({ last_verdict_passed: null, last_verdict_at: null });
      const labels = await db.selectFrom('node_labels').selectAll().orderBy('key').execute();
      expect(labels).toEqual([
        { node_id: labelled.id, key: 'ring/x', value: 'canary', node_created_at: labelled.created_at },
        { node_id: labelled.id, key: 'site', value: 'north', node_created_at: labelled.created_at },
      ]);
      const verdicts = await db.selectFrom('attestation_verdicts').select('pcr_mismatches').execute();
      expect(verdicts.map((v) => v.pcr_mismatches)).toEqual([null, null, null]);
    } finally {
      await db.destroy();
    }
  });
});
