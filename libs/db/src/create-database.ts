import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, sql, SqliteDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import type { DatabaseConfig } from '#otter/config';
import { withAmbientTransactions } from './ambient-transaction.js';
import { migrationProvider } from './migrations.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

const postgresDbs = new WeakSet<Db>();

export const POSTGRES_IDLE_IN_TRANSACTION_MS = 60_000;
export const POSTGRES_LOCK_TIMEOUT_MS = 30_000;

export function createDatabase(config: DatabaseConfig): Db {
  if (config.dialect === 'postgres') {
    const db = withAmbientTransactions(
      new Kysely<Database>({
        dialect: new PostgresDialect({
          pool: new pg.Pool({
            connectionString: config.url,
            max: 10,
            // A process that hangs inside a transaction (a paused VM, a partition) or whose backend outlives it
            // must not hold row locks, such as a scheduler's claim on a rollout, for ever: the server ends an
            // idle transaction after a minute, and no statement waits for a lock longer than 30 s.
            idle_in_transaction_session_timeout: POSTGRES_IDLE_IN_TRANSACTION_MS,
            lock_timeout: POSTGRES_LOCK_TIMEOUT_MS,
          }),
        }),
      }),
    );
    postgresDbs.add(db);
    return db;
  }
  if (config.file !== ':memory:') mkdirSync(dirname(config.file), { recursive: true });
  const sqlite = new SqliteDatabase(config.file);
  // WAL plus a busy timeout lets the api and scheduler processes share the file without "database is locked".
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('busy_timeout = 10000');
  sqlite.pragma('foreign_keys = ON');
  return withAmbientTransactions(
    new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) }),
  );
}

export async function migrateToLatest(db: Db): Promise<void> {
  // Kysely looks for its bookkeeping tables in every schema unless told which one; on a server where other
  // schemas hold Otter tables (several deployments, or parallel tests) it must look only in ours.
  const migrationTableSchema = postgresDbs.has(db)
    ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s
    : undefined;
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(
      `database migration failed${failed ? ` at ${failed.migrationName}` : ''}: ${String(error)}`,
    );
  }
}

/** True when the error is a unique or primary-key violation, in either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown };
  return (
    e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e.code === 'SQLITE_CONSTRAINT_UNIQUE'
  );
}

/** Distinct SQL texts whose prepared statements are kept (IN lists of every length would grow it unbounded). */
const STATEMENTS_HELD = 500;

/**
 * Kysely prepares every query anew; on a hot path (a device poll is three small queries) preparing costs more
 * than running. Statements are kept per SQL text and reused: Kysely runs one query at a time per connection,
 * and Otter never streams, so a statement is never in use twice at once.
 */
function withStatementCache(sqlite: SqliteDatabase.Database): {
  close: () => void;
  prepare: (sql: string) => SqliteDatabase.Statement;
} {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let statement = statements.get(sql);
      if (!statement) {
        statement = sqlite.prepare(sql);
        if (statements.size < STATEMENTS_HELD) statements.set(sql, statement);
      }
      return statement;
    },
  };
}

/** One round trip to the database (readiness probes): throws when it does not answer. */
export async function pingDatabase(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}
