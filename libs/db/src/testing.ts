import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { DatabaseConfig } from '#otter/config';

/**
 * The two dialects every repository test runs against. PostgreSQL gets a fresh schema per call, so test
 * files can run in parallel on the shared `test` database.
 */
export async function testDatabases(): Promise<
  Array<{ name: string; config: DatabaseConfig; drop: () => Promise<void> }>
> {
  const sqliteFile = join(mkdtempSync(join(tmpdir(), 'otter-db-')), 'test.sqlite');
  const list: Array<{ name: string; config: DatabaseConfig; drop: () => Promise<void> }> = [
    { name: 'sqlite', config: { dialect: 'sqlite', file: sqliteFile }, drop: async () => {} },
  ];
  const url = process.env.OTTER_TEST_DATABASE_URL;
  if (!url)
    throw new Error('OTTER_TEST_DATABASE_URL is not set: run the tests through `make test` or `make unit`');
  {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    const u = new URL(url);
    u.searchParams.set('options', `-c search_path=${schema}`);
    list.push({
      name: 'postgres',
      config: { dialect: 'postgres', url: u.toString() },
      drop: async () => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        await c.query(`DROP SCHEMA ${schema} CASCADE`);
        await c.end();
      },
    });
  }
  return list;
}
