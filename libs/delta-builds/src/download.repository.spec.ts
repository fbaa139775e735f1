import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { NodeHistoryLimits } from '#otter/retention';
import { createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import { DownloadRepository } from './download.repository.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

// The api bounds each report to one image (at most Number.MAX_SAFE_INTEGER bytes); the totals must still
// hold when a table has many of the largest: 1,100 rows of 2^53 - 1 add up past 2^63, where SQLite's integer
// SUM raises "integer overflow".
const MAX = Number.MAX_SAFE_INTEGER;
const ROWS = 1100;

describe.each(dbs)('DownloadRepository totals on $name', ({ config }) => {
  let db: Db;
  let repo: DownloadRepository;

  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    repo = new DownloadRepository(db, NodeHistoryLimits.over(db, loadConfig({})));
  });
  afterAll(async () => db?.destroy());

  it('sums exactly while the totals fit a JSON number', async () => {
    const node = randomUUID();
    for (const bytes of [600, 700, 4000])
      await repo.insert({
        nodeId: node,
        hardwareId: 'exact',
        version: '2.0.0',
        method: 'delta',
        bytesDownloaded: bytes,
        fullBytes: 2 ** 52,
      });
    expect(await repo.totalsByRelease('exact')).toEqual([
      {
        hardwareId: 'exact',
        version: '2.0.0',
        downloads: 3,
        bytesDownloaded: 5300,
        fullBytes: 3 * 2 ** 52,
        bytesSaved: 3 * 2 ** 52 - 5300,
      },
    ]);
  });

  it('never overflows: rows of 2^53 - 1 bytes whose sum passes 2^63 still total, per release and per node', async () => {
    const node = randomUUID();
    const rows = Array.from({ length: ROWS }, () => ({
      id: randomUUID(),
      node_id: node,
      hardware_id: 'huge',
      version: '9.9.9',
      method: 'full',
      bytes_downloaded: MAX,
      full_bytes: MAX,
      created_at: new Date().toISOString(),
    }));
    for (let i = 0; i < rows.length; i += 500)
      await db
        .insertInto('downloads')
        .values(rows.slice(i, i + 500))
        .execute();

    const [release] = await repo.totalsByRelease('huge');
    const [byNode] = await repo.totalsByNode('huge');
    for (const totals of [release!, byNode!]) {
      expect(totals.downloads).toBe(ROWS);
      expect(totals.bytesDownloaded).toBeGreaterThan(2 ** 63);
      expect(totals.bytesDownloaded / (ROWS * MAX)).toBeCloseTo(1, 12);
      expect(totals.fullBytes).toBe(totals.bytesDownloaded);
      expect(totals.bytesSaved).toBe(0);
      expect(Number.isFinite(totals.bytesDownloaded)).toBe(true);
    }
  });
});
