import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase, isUniqueViolation, migrateToLatest } from './create-database.js';
import { testDatabases } from './testing.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

describe.each(dbs)('database on $name', ({ config }) => {
  it('migrates twice without harm and enforces unique metadata versions', async () => {
    const db = createDatabase(config);
    await migrateToLatest(db);
    await migrateToLatest(db);
    const row = {
      repository: 'image',
      role: 'timestamp',
      version: 1,
      expires_at: 'x',
      body: '{}',
      created_at: 'x',
    };
    await db.insertInto('tuf_metadata').values(row).execute();
    const again = await db
      .insertInto('tuf_metadata')
      .values(row)
      .execute()
      .catch((e: unknown) => e);
    expect(isUniqueViolation(again)).toBe(true);
    await db.destroy();
  });
});
