import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import { auditServiceFor, insertAuditRow } from '../../audit/src/testing.js';
import { RetentionRepository, type NodeHistoryTable } from './retention.repository.js';
import { RetentionService } from './retention.service.js';
import { enrollmentRow, historyRow, insertHistory } from './testing.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const DAY_MS = 86_400_000;
const ago = (ms: number): string => new Date(Date.now() - ms).toISOString();

async function tags(db: Db, table: NodeHistoryTable, nodeId: string): Promise<string[]> {
  const column =
    table === 'device_reports' ? 'event' : table === 'attestation_verdicts' ? 'reason' : 'version';
  const rows = await db
    .selectFrom(table as 'device_reports')
    .select(`${column as 'event'} as tag`)
    .where('node_id', '=', nodeId)
    .orderBy('created_at')
    .execute();
  return rows.map((r) => r.tag);
}

async function enrollment(db: Db, expiresAt: string, state = 'challenged'): Promise<string> {
  const id = randomUUID();
  await db
    .insertInto('enrollments')
    .values(enrollmentRow(id, expiresAt, ago(DAY_MS), state) as never)
    .execute();
  return id;
}

describe.each(dbs)('retention on $name', ({ config: database }) => {
  let db: Db;
  let repository: RetentionRepository;

  beforeAll(async () => {
    db = createDatabase(database);
    await migrateToLatest(db);
    repository = new RetentionRepository(db);
  });
  afterAll(async () => db?.destroy());

  it.each(['device_reports', 'attestation_verdicts', 'downloads'] as const)(
    'keeps the newest rows of one node in %s, and touches no other node',
    async (table) => {
      const flooder = randomUUID();
      const neighbour = randomUUID();
      await insertHistory(
        db,
        table,
        Array.from({ length: 20 }, (_, i) =>
          historyRow(table, flooder, ago((20 - i) * 1000), `t${String(i).padStart(2, '0')}`),
        ),
      );
      await insertHistory(db, table, [
        historyRow(table, neighbour, ago(60_000), 'n0'),
        historyRow(table, neighbour, ago(50_000), 'n1'),
      ]);
      expect(await repository.keepNewest(table, flooder, 5)).toBe(15);
      expect(await tags(db, table, flooder)).toEqual(['t15', 't16', 't17', 't18', 't19']);
      expect(await repository.keepNewest(table, flooder, 5)).toBe(0);
      expect(await repository.keepNewest(table, neighbour, 5)).toBe(0);
      expect(await tags(db, table, neighbour)).toEqual(['n0', 'n1']);
      expect(await repository.keepNewest(table, randomUUID(), 1)).toBe(0);
    },
  );

  it('waits for the slack before it trims back to the cap', async () => {
    const node = randomUUID();
    const write = (i: number) =>
      insertHistory(db, 'device_reports', [
        historyRow('device_reports', node, ago(100_000 - i * 1000), `r${i}`),
      ]);
    for (let i = 0; i < 7; i++) await write(i);
    expect(await repository.keepNewest('device_reports', node, 5, 3)).toBe(0);
    await write(7);
    expect(await repository.keepNewest('device_reports', node, 5, 3)).toBe(3);
    expect(await tags(db, 'device_reports', node)).toEqual(['r3', 'r4', 'r5', 'r6', 'r7']);
  });

  it('purges verdicts by age but keeps each node’s latest and those of nodes in an unfinished rollout', async () => {
    const onlyOld = randomUUID();
    const oldAndNew = randomUUID();
    const inRollout = randomUUID();
    const old = (n: string, tag: string, days: number) =>
      historyRow('attestation_verdicts', n, ago(days * DAY_MS), tag);
    await insertHistory(db, 'attestation_verdicts', [
      old(onlyOld, 'a-oldest', 30),
      old(onlyOld, 'a-older', 20),
      old(onlyOld, 'a-latest', 10),
      old(oldAndNew, 'b-old', 20),
      old(oldAndNew, 'b-new', 1),
      old(inRollout, 'c-old', 20),
      old(inRollout, 'c-older', 30),
    ]);
    await db
      .insertInto('rollout_memberships')
      .values({ node_id: inRollout, rollout_id: randomUUID() })
      .execute();
    expect(await repository.purgeVerdicts(ago(5 * DAY_MS))).toBe(3);
    expect(await tags(db, 'attestation_verdicts', onlyOld)).toEqual(['a-latest']);
    expect(await tags(db, 'attestation_verdicts', oldAndNew)).toEqual(['b-new']);
    expect(await tags(db, 'attestation_verdicts', inRollout)).toEqual(['c-older', 'c-old']);
    expect(await repository.purgeVerdicts(ago(5 * DAY_MS))).toBe(0);
  });

  it('purges reports by age except those of nodes in an unfinished rollout, and downloads by age', async () => {
    const plain = randomUUID();
    const inRollout = randomUUID();
    await insertHistory(db, 'device_reports', [
      historyRow('device_reports', plain, ago(40 * DAY_MS), 'old'),
      historyRow('device_reports', plain, ago(DAY_MS), 'new'),
      historyRow('device_reports', inRollout, ago(40 * DAY_MS), 'kept'),
    ]);
    await db
      .insertInto('rollout_memberships')
      .values({ node_id: inRollout, rollout_id: randomUUID() })
      .execute();
    expect(await repository.purgeReports(ago(30 * DAY_MS))).toBe(1);
    expect(await tags(db, 'device_reports', plain)).toEqual(['new']);
    expect(await tags(db, 'device_reports', inRollout)).toEqual(['kept']);

    await insertHistory(db, 'downloads', [
      historyRow('downloads', plain, ago(400 * DAY_MS), '0.9.0'),
      historyRow('downloads', plain, ago(DAY_MS), '1.0.0'),
    ]);
    expect(await repository.purgeDownloads(ago(365 * DAY_MS))).toBe(1);
    expect(await tags(db, 'downloads', plain)).toEqual(['1.0.0']);
  });

  it('purges enrollments that expired before the cutoff, whatever their state, and keeps open ones', async () => {
    const longExpired = await enrollment(db, ago(10 * DAY_MS));
    const activated = await enrollment(db, ago(9 * DAY_MS), 'activated');
    const recentlyExpired = await enrollment(db, ago(60_000));
    const open = await enrollment(db, new Date(Date.now() + 300_000).toISOString());
    expect(await repository.purgeEnrollments(ago(7 * DAY_MS))).toBe(2);
    const left = (await db.selectFrom('enrollments').select('id').execute()).map((r) => r.id);
    expect(left).not.toContain(longExpired);
    expect(left).not.toContain(activated);
    expect(left).toEqual(expect.arrayContaining([recentlyExpired, open]));
  });

  it('purges a backlog larger than one batch', async () => {
    const node = randomUUID();
    await insertHistory(
      db,
      'downloads',
      Array.from({ length: 5_123 }, (_, i) =>
        historyRow('downloads', node, ago(500 * DAY_MS + i), `0.0.${i}`),
      ),
    );
    expect(await repository.purgeDownloads(ago(365 * DAY_MS))).toBe(5_123);
    expect(await tags(db, 'downloads', node)).toEqual([]);
  });

  it('RetentionService purges each table by its configured age', async () => {
    const node = randomUUID();
    await insertHistory(db, 'device_reports', [
      historyRow('device_reports', node, ago(3_000), 'old'),
      historyRow('device_reports', node, ago(0), 'new'),
    ]);
    await insertHistory(db, 'attestation_verdicts', [
      historyRow('attestation_verdicts', node, ago(3_000), 'old'),
      historyRow('attestation_verdicts', node, ago(0), 'new'),
    ]);
    await insertHistory(db, 'downloads', [
      historyRow('downloads', node, ago(3_000), 'old'),
      historyRow('downloads', node, ago(0), 'new'),
    ]);
    const expired = await enrollment(db, ago(3_000));
    const config = loadConfig({
      OTTER_RETENTION_REPORTS_MAX_AGE: '2',
      OTTER_RETENTION_VERDICTS_MAX_AGE: '2',
      OTTER_RETENTION_DOWNLOADS_MAX_AGE: '2',
      OTTER_RETENTION_ENROLLMENTS_MAX_AGE: '2',
      OTTER_AUDIT_RETENTION_DAYS: '1',
    });
    await insertAuditRow(db, new Date(Date.now() - 2 * 86_400_000));
    const report = await new RetentionService(repository, auditServiceFor(db, config), config).purge();
    // Other tests' rows in this database are older than 2 s too: count at least this node's.
    for (const n of Object.values(report)) expect(n).toBeGreaterThanOrEqual(1);
    for (const table of ['device_reports', 'attestation_verdicts', 'downloads'] as const)
      expect(await tags(db, table, node)).toEqual(['new']);
    expect(await db.selectFrom('enrollments').select('id').where('id', '=', expired).execute()).toEqual([]);
  });
});
