import { sql, SqliteAdapter, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';

/**
 * The audit log (libs/audit, docs/audit.md). Append-only in the database itself, not only in the code: UPDATE
 * is refused by a trigger on both dialects, and so is DELETE, except of rows older than a cutoff recorded
 * beforehand in `audit_purges` (itself append-only). That recorded cutoff is the one narrow path the retention
 * purge uses: it works the same on SQLite, which has no session settings a trigger could read, and it leaves
 * a trace of every purge that no later statement can remove.
 */
export const auditLogMigration: Migration = {
  async up(db: Kysely<unknown>) {
    const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
    await db.schema
      .createTable('audit_log')
      // Monotonic: the API's cursor. SQLite's AUTOINCREMENT never reuses an id after a purge.
      .addColumn('id', sqlite ? 'integer' : 'bigserial', (c) =>
        sqlite ? c.primaryKey().autoIncrement() : c.primaryKey(),
      )
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('actor_token_id', 'text')
      .addColumn('actor_name', 'text')
      .addColumn('actor_role', 'text')
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('target_kind', 'text', (c) => c.notNull())
      .addColumn('target_id', 'text')
      .addColumn('request_id', 'text')
      .addColumn('source', 'text')
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('changes', 'text', (c) => c.notNull())
      .execute();
    // Each filter of GET /api/v1/audit walks its index newest first (id desc); `at` serves time ranges and
    // the retention purge.
    await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
    await db.schema.createIndex('audit_log_action').on('audit_log').columns(['action', 'id']).execute();
    await db.schema
      .createIndex('audit_log_actor_token')
      .on('audit_log')
      .columns(['actor_token_id', 'id'])
      .execute();
    await db.schema
      .createIndex('audit_log_actor_name')
      .on('audit_log')
      .columns(['actor_name', 'id'])
      .execute();
    await db.schema
      .createIndex('audit_log_target')
      .on('audit_log')
      .columns(['target_kind', 'target_id', 'id'])
      .execute();
    await db.schema
      .createTable('audit_purges')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('before', 'text', (c) => c.notNull())
      .execute();
    if (sqlite) await sqliteTriggers(db);
    else await postgresTriggers(db);
  },
};

async function sqliteTriggers(db: Kysely<unknown>): Promise<void> {
  for (const table of ['audit_log', 'audit_purges']) {
    await sql
      .raw(
        `CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table} ` +
          `BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`,
      )
      .execute(db);
  }
  await sql
    .raw(
      `CREATE TRIGGER audit_purges_no_delete BEFORE DELETE ON audit_purges ` +
        `BEGIN SELECT RAISE(ABORT, 'audit_purges is append-only'); END`,
    )
    .execute(db);
  await sql
    .raw(
      `CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log ` +
        `WHEN NOT EXISTS (SELECT 1 FROM audit_purges WHERE OLD.at < audit_purges.before) ` +
        `BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: only rows older than a recorded purge cutoff may go'); END`,
    )
    .execute(db);
}

async function postgresTriggers(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE FUNCTION otter_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$`.execute(db);
  await sql`CREATE FUNCTION otter_audit_log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM audit_purges WHERE OLD.at < audit_purges.before) THEN
        RAISE EXCEPTION 'audit_log is append-only: only rows older than a recorded purge cutoff may go';
      END IF;
      RETURN OLD;
    END $$`.execute(db);
  for (const table of ['audit_log', 'audit_purges']) {
    await sql
      .raw(
        `CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION otter_refuse_change()`,
      )
      .execute(db);
    // TRUNCATE skips row triggers: refuse it per statement.
    await sql
      .raw(
        `CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION otter_refuse_change()`,
      )
      .execute(db);
  }
  await sql
    .raw(
      'CREATE TRIGGER audit_purges_no_delete BEFORE DELETE ON audit_purges FOR EACH ROW EXECUTE FUNCTION otter_refuse_change()',
    )
    .execute(db);
  await sql
    .raw(
      'CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION otter_audit_log_delete()',
    )
    .execute(db);
}
