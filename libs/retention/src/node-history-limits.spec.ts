import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import { NodeHistoryLimits } from './node-history-limits.js';
import { historyRow, insertHistory } from './testing.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

describe.each(dbs)('per-node caps on $name', ({ config: database }) => {
  let db: Db;
  beforeAll(async () => {
    db = createDatabase(database);
    await migrateToLatest(db);
  });
  afterAll(async () => db?.destroy());

  const limits = (cap: number): NodeHistoryLimits =>
    NodeHistoryLimits.over(db, loadConfig({ OTTER_RETENTION_REPORTS_PER_NODE: String(cap) }));

  /** What NodeRepository.addReport does: insert, then the limit. Distinct milliseconds, so no ties. */
  let clock = Date.parse('2026-01-01T00:00:00Z');
  async function report(replica: NodeHistoryLimits, nodeId: string): Promise<number> {
    const at = new Date((clock += 1000)).toISOString();
    await insertHistory(db, 'device_reports', [historyRow('device_reports', nodeId, at, at)]);
    await replica.afterInsert('device_reports', nodeId);
    const row = await db
      .selectFrom('device_reports')
      .select(({ fn }) => fn.countAll<number | string>().as('n'))
      .where('node_id', '=', nodeId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  it('holds a node at its cap exactly when the cap is 10 or less', async () => {
    const replica = limits(10);
    const node = randomUUID();
    const counts: number[] = [];
    for (let i = 0; i < 30; i++) counts.push(await report(replica, node));
    expect(Math.max(...counts)).toBe(10);
    expect(counts.at(-1)).toBe(10);
  });

  it('lets a larger cap run a slack over before it trims, within the documented bound, across two replicas', async () => {
    const cap = 40; // slack 4
    const [one, two] = [limits(cap), limits(cap)];
    const node = randomUUID();
    const single: number[] = [];
    for (let i = 0; i < 200; i++) single.push(await report(one, node));
    expect(Math.max(...single)).toBeLessThanOrEqual(cap + 4 - 1 + (4 - 1));
    expect(Math.max(...single)).toBeGreaterThan(cap);
    expect(Math.min(...single.slice(cap + 10))).toBeGreaterThanOrEqual(cap);

    const other = randomUUID();
    const both: number[] = [];
    for (let i = 0; i < 200; i++) both.push(await report(i % 2 === 0 ? one : two, other));
    expect(Math.max(...both)).toBeLessThanOrEqual(cap + 4 - 1 + 2 * (4 - 1));
  });
});
