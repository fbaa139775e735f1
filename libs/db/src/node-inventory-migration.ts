import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';

/** The columns this migration reads and writes, as they are when it runs. */
type Tables = {
  nodes: { id: string; labels: string; created_at: string };
  node_labels: { node_id: string; key: string; value: string; node_created_at: string };
};

/**
 * A node's whole story (issue 10): what its agent reports about itself, when it was last seen, its last
 * verdict kept on its row, its operator labels as rows, and the keys the node list pages and filters by.
 *
 * - `node_inventory`: the agent's latest inventory (JSON), its hash and when it was reported; one row a node.
 * - `nodes.last_seen_at`: the last authenticated device request (written at most once in five minutes).
 * - `nodes.last_verdict_*`: the newest verdict's outcome, reason and time, written with each verdict, so a page
 *   of nodes and the attestation-status filter read no verdict table. Existing nodes get theirs from it here.
 * - `node_labels`: the operator labels as (node, key, value) rows next to `nodes.labels` (which rollout
 *   selectors read), with the node's created_at, so a page filtered by `label=key=value` is a range scan of
 *   (key, value, node_created_at, node_id) in page order.
 * - `attestation_verdicts.pcr_mismatches`: each PCR that differed from its reference (quoted vs expected), as
 *   JSON; NULL for verdicts stored before this column (their reason still names the PCRs).
 * - `device_reports.version` / `bytes`: an update step's release and bytes, as columns rather than text.
 *
 * Every list page is ordered by (created_at, id); each filter that narrows by equality has an index that leads
 * with its column and ends with that order, so a filtered page is a range scan, not a sort.
 */
export const nodeInventoryMigration: Migration = {
  async up(untyped: Kysely<unknown>) {
    const db = untyped as Kysely<Tables>;
    await untyped.schema
      .createTable('node_inventory')
      .addColumn('node_id', 'text', (c) => c.primaryKey())
      .addColumn('inventory', 'text', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('reported_at', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .execute();

    for (const column of ['last_seen_at', 'last_verdict_reason', 'last_verdict_at']) {
      await untyped.schema.alterTable('nodes').addColumn(column, 'text').execute();
    }
    await untyped.schema.alterTable('nodes').addColumn('last_verdict_passed', 'integer').execute();
    const latest = (column: 'passed' | 'reason' | 'created_at') =>
      sql`(SELECT v.${sql.ref(column)} FROM attestation_verdicts v WHERE v.node_id = nodes.id
           ORDER BY v.created_at DESC, v.id DESC LIMIT 1)`;
    await sql`UPDATE nodes SET last_verdict_passed = ${latest('passed')}, last_verdict_reason = ${latest(
      'reason',
    )}, last_verdict_at = ${latest('created_at')}`.execute(untyped);

    await untyped.schema
      .createTable('node_labels')
      .addColumn('node_id', 'text', (c) => c.notNull())
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      // The node's created_at (which never changes): the page order, so the label index can end with it.
      .addColumn('node_created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('node_labels_pk', ['node_id', 'key'])
      .execute();
    await untyped.schema
      .createIndex('node_labels_page')
      .on('node_labels')
      .columns(['key', 'value', 'node_created_at', 'node_id'])
      .execute();
    for (const node of await db.selectFrom('nodes').select(['id', 'labels', 'created_at']).execute()) {
      const rows = Object.entries(JSON.parse(node.labels) as Record<string, string>).map(([key, value]) => ({
        node_id: node.id,
        key,
        value,
        node_created_at: node.created_at,
      }));
      if (rows.length > 0) await db.insertInto('node_labels').values(rows).execute();
    }

    const pageIndexes: Array<[string, string[]]> = [
      ['nodes_page', []],
      ['nodes_state_page', ['state']],
      ['nodes_hardware_page', ['hardware_id']],
      ['nodes_version_page', ['running_version']],
      ['nodes_verdict_page', ['last_verdict_passed']],
    ];
    for (const [name, lead] of pageIndexes) {
      await untyped.schema
        .createIndex(name)
        .on('nodes')
        .columns([...lead, 'created_at', 'id'])
        .execute();
    }
    await untyped.schema.createIndex('nodes_last_seen').on('nodes').column('last_seen_at').execute();

    await untyped.schema.alterTable('attestation_verdicts').addColumn('pcr_mismatches', 'text').execute();
    await untyped.schema.alterTable('device_reports').addColumn('version', 'text').execute();
    await untyped.schema.alterTable('device_reports').addColumn('bytes', 'bigint').execute();
  },
};
