import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';

/** The director's node roles, each with its own soonest-expiry column (director_assignments.<role>_expires_at). */
const NODE_ROLES = ['targets', 'snapshot', 'timestamp'] as const;

/**
 * What the scrape-time fleet gauges read (GET /metrics), so each is one index walk and not a pass over rows
 * at 100,000 nodes (issue 10; bench/metrics.bench.mjs):
 *
 * - `nodes_fleet` on nodes(hardware_id, state, running_version, last_verdict_passed, last_verdict_at): otter_nodes
 *   is one GROUP BY in this index's order that reads nothing else (an index-only scan, no sort).
 * - `director_assignments.{targets,snapshot,timestamp}_expires_at`: the expiry of the node's newest version of
 *   each director role, written in the same transaction as that version (DirectorMetadataStore.commitSet), each
 *   with an index, so the soonest expiry over every node is one probe per role instead of a pass over every
 *   node's tuf_metadata rows (about 600 bytes each). Existing rows get theirs from tuf_metadata here.
 */
export const fleetAggregatesMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createIndex('nodes_fleet')
      .on('nodes')
      .columns(['hardware_id', 'state', 'running_version', 'last_verdict_passed', 'last_verdict_at'])
      .execute();
    for (const role of NODE_ROLES) {
      const column = `${role}_expires_at`;
      await db.schema.alterTable('director_assignments').addColumn(column, 'text').execute();
      await sql`UPDATE director_assignments SET ${sql.ref(column)} = (
          SELECT m.expires_at FROM tuf_metadata m
          WHERE m.repository = ${'director/'} || director_assignments.node_id AND m.role = ${role}
          ORDER BY m.version DESC LIMIT 1)`.execute(db);
      await db.schema
        .createIndex(`director_assignments_${column}`)
        .on('director_assignments')
        .column(column)
        .execute();
    }
  },
};
