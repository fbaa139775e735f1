import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import type { DatabaseConfig } from '#otter/config';
import type { Insertable } from 'kysely';
import type { Db } from './create-database.js';
import { migrationProvider } from './migrations.js';
import type { NodeLabelTable, NodeTable } from './schema.js';

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

export interface TestNodeRow {
  hardwareId?: string;
  state?: string;
  runningVersion?: string | null;
  labels?: Record<string, string>;
  pinnedPcrs?: Record<string, string>;
  /** created_at and updated_at; default now (benches that run on a simulated clock pass theirs). */
  createdAt?: string;
  lastSeenAt?: string | null;
  /** The newest verdict as the node row keeps it (the verdict table is not written). */
  lastVerdict?: { passed: boolean; at: string; reason?: string } | null;
}

/**
 * A node row as enrollment would leave it (no TPM: random EK and AK), for tests and benches that need nodes
 * as data; `id` defaults to a new UUID.
 */
export function testNodeRow(node: TestNodeRow & { id?: string } = {}): Insertable<NodeTable> {
  const now = node.createdAt ?? new Date().toISOString();
  return {
    id: node.id ?? randomUUID(),
    hardware_id: node.hardwareId ?? 'rpi4',
    state: node.state ?? 'active',
    ek_public_sha256: randomBytes(32).toString('hex'),
    ek_cert_serial: randomBytes(8).toString('hex'),
    ek_cert_issuer: 'CN=Test TPM Manufacturer',
    ak_public: randomBytes(90).toString('base64'),
    device_public: null,
    device_cert_serial: null,
    device_cert_not_after: null,
    pinned_pcrs: JSON.stringify(node.pinnedPcrs ?? {}),
    running_version: node.runningVersion ?? null,
    tpm_reset_count: null,
    tpm_restart_count: null,
    tpm_clock: null,
    integrity_failed_at: null,
    labels: JSON.stringify(node.labels ?? {}),
    created_at: now,
    updated_at: now,
    ek_key_sha256: randomBytes(32).toString('hex'),
    ek_issuer_serial_sha256: randomBytes(32).toString('hex'),
    // Columns of 0009_node_inventory only when asked for, so rows fit a database migrated to before it too.
    ...(node.lastSeenAt !== undefined && { last_seen_at: node.lastSeenAt }),
    ...(node.lastVerdict && {
      last_verdict_passed: node.lastVerdict.passed ? 1 : 0,
      last_verdict_reason: node.lastVerdict.reason ?? 'seeded',
      last_verdict_at: node.lastVerdict.at,
    }),
  };
}

/** The node_labels rows of a node row's labels (what NodeRepository.setLabels writes next to them). */
export function testNodeLabelRows(row: Insertable<NodeTable>): Array<Insertable<NodeLabelTable>> {
  const labels = JSON.parse(row.labels ?? '{}') as Record<string, string>;
  return Object.entries(labels).map(([key, value]) => ({
    node_id: row.id,
    key,
    value,
    node_created_at: row.created_at,
  }));
}

/** Inserts testNodeRow(node); returns its id. */
export async function seedNodeRow(db: Db, node: TestNodeRow = {}): Promise<string> {
  const row = testNodeRow(node);
  await db.insertInto('nodes').values(row).execute();
  const labels = testNodeLabelRows(row);
  if (labels.length > 0) await db.insertInto('node_labels').values(labels).execute();
  return row.id;
}

/** Migrates `db` up to and including the migration `name` (for migration specs that seed the rows before one). */
export async function migrateTo(db: Db, name: string, postgres: boolean): Promise<void> {
  const migrationTableSchema = postgres
    ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s
    : undefined;
  const { error } = await new Migrator({ db, provider: migrationProvider, migrationTableSchema }).migrateTo(
    name,
  );
  if (error) throw error;
}
