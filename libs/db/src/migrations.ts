import type { Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';
import { auditLogMigration } from './audit-log-migration.js';
import { fleetAggregatesMigration } from './fleet-aggregates-migration.js';
import { nodeInventoryMigration } from './node-inventory-migration.js';
import { tpmIdentityMigration } from './tpm-identity-migration.js';

// Migrations are code, listed in order, so they ship inside the build and run the same on both dialects.
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('api_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('releases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('target_path', 'text', (c) => c.notNull().unique())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('length', 'bigint', (c) => c.notNull())
        .addColumn('blob_key', 'text', (c) => c.notNull())
        .addColumn('measurements', 'text', (c) => c.notNull())
        .addColumn('notes', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addUniqueConstraint('releases_hardware_version', ['hardware_id', 'version'])
        .execute();
      await db.schema
        .createTable('tuf_metadata')
        .addColumn('repository', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        // The primary key is what makes concurrent publishers safe: two can never store the same version.
        .addPrimaryKeyConstraint('tuf_metadata_pk', ['repository', 'role', 'version'])
        .execute();
      await db.schema
        .createTable('tuf_targets')
        .addColumn('repository', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('bin', 'text', (c) => c.notNull())
        .addColumn('length', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('custom', 'text', (c) => c.notNull())
        .addColumn('blob_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('tuf_targets_pk', ['repository', 'path'])
        .execute();
      await db.schema
        .createIndex('tuf_targets_bin')
        .on('tuf_targets')
        .columns(['repository', 'bin'])
        .execute();
    },
  },
  '0002_nodes': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('nodes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('ek_public_sha256', 'text', (c) => c.notNull().unique())
        .addColumn('ek_cert_serial', 'text', (c) => c.notNull())
        .addColumn('ek_cert_issuer', 'text', (c) => c.notNull())
        .addColumn('ak_public', 'text', (c) => c.notNull())
        .addColumn('device_public', 'text')
        .addColumn('device_cert_serial', 'text')
        .addColumn('device_cert_not_after', 'text')
        .addColumn('pinned_pcrs', 'text', (c) => c.notNull())
        .addColumn('running_version', 'text')
        .addColumn('tpm_reset_count', 'bigint')
        .addColumn('tpm_restart_count', 'bigint')
        .addColumn('tpm_clock', 'bigint')
        .addColumn('integrity_failed_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('enrollments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('ek_kind', 'text', (c) => c.notNull())
        .addColumn('ek_public', 'text', (c) => c.notNull())
        .addColumn('ek_public_sha256', 'text', (c) => c.notNull())
        .addColumn('ek_cert_serial', 'text', (c) => c.notNull())
        .addColumn('ek_cert_issuer', 'text', (c) => c.notNull())
        .addColumn('ak_public', 'text', (c) => c.notNull())
        .addColumn('secret_sha256', 'text', (c) => c.notNull())
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('running_version', 'text')
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('enrollment_allowlist')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('note', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('enrollment_allowlist_pk', ['kind', 'value'])
        .execute();
      await db.schema
        .createTable('attestation_verdicts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('passed', 'integer', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('pcr_values', 'text', (c) => c.notNull())
        .addColumn('release_version', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('attestation_verdicts_node')
        .on('attestation_verdicts')
        .columns(['node_id', 'created_at'])
        .execute();
      await db.schema
        .createTable('device_reports')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('ok', 'integer', (c) => c.notNull())
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('reported_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0003_deltas': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('delta_builds')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('from_version', 'text', (c) => c.notNull())
        .addColumn('to_version', 'text', (c) => c.notNull())
        .addColumn('from_sha256', 'text', (c) => c.notNull())
        .addColumn('to_sha256', 'text', (c) => c.notNull())
        .addColumn('from_length', 'bigint', (c) => c.notNull())
        .addColumn('to_length', 'bigint', (c) => c.notNull())
        .addColumn('target_path', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('progress', 'integer', (c) => c.notNull())
        .addColumn('patch_length', 'bigint')
        .addColumn('patch_sha256', 'text')
        .addColumn('blob_key', 'text')
        .addColumn('build_seconds', 'real')
        .addColumn('peak_rss_bytes', 'bigint')
        .addColumn('error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('downloads')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('bytes_downloaded', 'bigint', (c) => c.notNull())
        .addColumn('full_bytes', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0004_rollouts': {
    async up(db: Kysely<unknown>) {
      // Labels select a rollout's target group; JSON text so both dialects store it the same way.
      await db.schema
        .alterTable('nodes')
        .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute();
      await db.schema
        .createTable('rollouts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('release_id', 'text', (c) => c.notNull())
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('selector', 'text', (c) => c.notNull())
        .addColumn('waves', 'text', (c) => c.notNull())
        .addColumn('success_threshold', 'real', (c) => c.notNull())
        .addColumn('failure_threshold', 'real', (c) => c.notNull())
        .addColumn('max_attestation_age_seconds', 'integer', (c) => c.notNull())
        .addColumn('maintenance_window', 'text')
        .addColumn('max_concurrent', 'integer')
        .addColumn('node_deadline_seconds', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('state_reason', 'text')
        .addColumn('current_wave', 'integer', (c) => c.notNull())
        .addColumn('wave_started_at', 'text')
        // Bumped by every state change, so two schedulers racing on one rollout cannot both win.
        .addColumn('revision', 'integer', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('rollout_nodes')
        .addColumn('rollout_id', 'text', (c) => c.notNull())
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('wave', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('from_version', 'text')
        .addColumn('admitted_at', 'text')
        .addColumn('finished_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('rollout_nodes_pk', ['rollout_id', 'node_id'])
        .execute();
      await db.schema
        .createIndex('rollout_nodes_wave_state')
        .on('rollout_nodes')
        .columns(['rollout_id', 'wave', 'state'])
        .execute();
      await db.schema.createIndex('rollout_nodes_node').on('rollout_nodes').columns(['node_id']).execute();
      // One row per node in an unfinished rollout: the primary key is what refuses overlapping rollouts.
      await db.schema
        .createTable('rollout_memberships')
        .addColumn('node_id', 'text', (c) => c.primaryKey())
        .addColumn('rollout_id', 'text', (c) => c.notNull())
        .execute();
      // What the director tells each node to run; generation grows with every change so metadata is
      // regenerated lazily on the node's next poll.
      await db.schema
        .createTable('director_assignments')
        .addColumn('node_id', 'text', (c) => c.primaryKey())
        .addColumn('hardware_id', 'text', (c) => c.notNull())
        .addColumn('release_id', 'text')
        .addColumn('target_path', 'text')
        .addColumn('version', 'text')
        .addColumn('sha256', 'text')
        .addColumn('length', 'bigint')
        .addColumn('rollout_id', 'text')
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('metadata_generation', 'integer')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0005_tpm_identity': tpmIdentityMigration,
  // Retention (libs/retention): per-node trims walk (node_id, created_at); age purges scan created_at; the
  // open-enrollment cap counts (state, expires_at).
  '0006_retention': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createIndex('device_reports_node')
        .on('device_reports')
        .columns(['node_id', 'created_at'])
        .execute();
      await db.schema
        .createIndex('device_reports_created')
        .on('device_reports')
        .column('created_at')
        .execute();
      await db.schema
        .createIndex('attestation_verdicts_created')
        .on('attestation_verdicts')
        .column('created_at')
        .execute();
      await db.schema
        .createIndex('downloads_node')
        .on('downloads')
        .columns(['node_id', 'created_at'])
        .execute();
      await db.schema.createIndex('downloads_created').on('downloads').column('created_at').execute();
      await db.schema
        .createIndex('enrollments_state_expires')
        .on('enrollments')
        .columns(['state', 'expires_at'])
        .execute();
    },
  },
  '0007_node_policy': {
    async up(db: Kysely<unknown>) {
      // A passing verdict proves its release only when the quote matched that release's signed measurements of
      // PCRs beyond the pinned ones. Verdicts stored before this column existed prove nothing.
      await db.schema
        .alterTable('attestation_verdicts')
        .addColumn('release_proven', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
  '0008_audit_log': auditLogMigration,
  '0009_node_inventory': nodeInventoryMigration,
  '0010_fleet_aggregates': fleetAggregatesMigration,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};
