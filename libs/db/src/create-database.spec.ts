import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  isUniqueViolation,
  migrateToLatest,
  POSTGRES_IDLE_IN_TRANSACTION_MS,
  POSTGRES_LOCK_TIMEOUT_MS,
} from './create-database.js';
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

describe.each(dbs.filter((d) => d.config.dialect === 'postgres'))(
  'PostgreSQL sessions on $name',
  ({ config }) => {
    it('end an idle transaction after a minute and a lock wait after 30 s, so a hung process frees its locks', async () => {
      const db = createDatabase(config);
      try {
        const show = async (name: string): Promise<string> =>
          (await sql<Record<string, string>>`show ${sql.raw(name)}`.execute(db)).rows[0]![name]!;
        expect(await show('idle_in_transaction_session_timeout')).toBe('1min');
        expect(await show('lock_timeout')).toBe('30s');
        expect(POSTGRES_IDLE_IN_TRANSACTION_MS).toBe(60_000);
        expect(POSTGRES_LOCK_TIMEOUT_MS).toBe(30_000);
      } finally {
        await db.destroy();
      }
    });
  },
);
