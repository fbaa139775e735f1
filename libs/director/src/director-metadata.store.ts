import { Inject, Injectable } from '@nestjs/common';
import { sql } from 'kysely';
import { DB, type Db } from '#otter/db';
import type { DirectorAssignment } from './director-assignment.js';
import { toAssignment } from './director-assignment.repository.js';

/** The shared root lives here; each node's targets, snapshot and timestamp under `director/{nodeId}`. */
export const DIRECTOR_ROOT_REPOSITORY = 'director';

export function nodeRepository(nodeId: string): string {
  return `${DIRECTOR_ROOT_REPOSITORY}/${nodeId}`;
}

export const NODE_ROLES = ['targets', 'snapshot', 'timestamp'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

export interface StoredRole {
  version: number;
  expiresAt: string;
  body: string;
}

export type StoredSet = Partial<Record<NodeRole, StoredRole>>;

export interface RoleWrite extends StoredRole {
  role: NodeRole | 'root';
}

/** Everything a poll needs to decide whether the held timestamp is still the one to serve, in one query. */
export interface PollState {
  assignment: DirectorAssignment;
  timestampVersion: number | undefined;
  rootVersion: number | undefined;
}

/** The assignment changed while its metadata was being signed: the signed set must not be stored. */
export class AssignmentChangedError extends Error {}

/** The only place that reads or writes the director's rows in `tuf_metadata`. */
@Injectable()
export class DirectorMetadataStore {
  constructor(@Inject(DB) private readonly db: Db) {}

  async pollState(nodeId: string): Promise<PollState | undefined> {
    return (await this.pollStates([nodeId])).get(nodeId);
  }

  /**
   * pollState() of many nodes in one statement (nodes without an assignment row are left out): what lets
   * concurrent polls confirm their held timestamps together instead of one query each.
   */
  async pollStates(nodeIds: readonly string[]): Promise<Map<string, PollState>> {
    const found = new Map<string, PollState>();
    if (nodeIds.length === 0) return found;
    const rows = await this.db
      .selectFrom('director_assignments as a')
      .selectAll('a')
      .select((eb) => [
        eb
          .selectFrom('tuf_metadata as m')
          .select((m) => m.fn.max('m.version').as('v'))
          .whereRef('m.repository', '=', sql<string>`${`${DIRECTOR_ROOT_REPOSITORY}/`} || a.node_id`)
          .where('m.role', '=', 'timestamp')
          .as('timestamp_version'),
        eb
          .selectFrom('tuf_metadata')
          .select((m) => m.fn.max('version').as('v'))
          .where('repository', '=', DIRECTOR_ROOT_REPOSITORY)
          .where('role', '=', 'root')
          .as('root_version'),
      ])
      .where('a.node_id', 'in', nodeIds)
      .execute();
    for (const row of rows) {
      const { timestamp_version, root_version, ...assignment } = row;
      found.set(row.node_id, {
        assignment: toAssignment(assignment),
        timestampVersion: timestamp_version === null ? undefined : Number(timestamp_version),
        rootVersion: root_version === null ? undefined : Number(root_version),
      });
    }
    return found;
  }

  /**
   * Gives a node the director has never named anything for an empty assignment (generation 0), so every
   * metadata commit can be conditional on the generation it was made from. False if there is no such node.
   */
  async ensureAssignmentRow(nodeId: string): Promise<boolean> {
    await this.db
      .insertInto('director_assignments')
      .columns(['node_id', 'hardware_id', 'generation', 'updated_at'])
      .expression((eb) =>
        eb
          .selectFrom('nodes')
          .select([
            'id',
            'hardware_id',
            sql<number>`0`.as('generation'),
            sql<string>`${new Date().toISOString()}`.as('updated_at'),
          ])
          .where('id', '=', nodeId),
      )
      .onConflict((oc) => oc.column('node_id').doNothing())
      .execute();
    const row = await this.db
      .selectFrom('director_assignments')
      .select('node_id')
      .where('node_id', '=', nodeId)
      .executeTakeFirst();
    return !!row;
  }

  /** The newest version of each of the node's roles. */
  async latestSet(nodeId: string): Promise<StoredSet> {
    const rows = await this.db
      .selectFrom('tuf_metadata as m')
      .select(['m.role', 'm.version', 'm.expires_at', 'm.body'])
      .where('m.repository', '=', nodeRepository(nodeId))
      .where(({ eb, selectFrom }) =>
        eb(
          'm.version',
          '=',
          selectFrom('tuf_metadata as n')
            .select(({ fn }) => fn.max('n.version').as('v'))
            .whereRef('n.repository', '=', 'm.repository')
            .whereRef('n.role', '=', 'm.role'),
        ),
      )
      .execute();
    const set: StoredSet = {};
    for (const r of rows) {
      if (r.role === 'targets' || r.role === 'snapshot' || r.role === 'timestamp') {
        set[r.role] = { version: Number(r.version), expiresAt: r.expires_at, body: r.body };
      }
    }
    return set;
  }

  async body(repository: string, role: string, version: number): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('tuf_metadata')
      .select('body')
      .where('repository', '=', repository)
      .where('role', '=', role)
      .where('version', '=', version)
      .executeTakeFirst();
    return row?.body;
  }

  async latestRoot(): Promise<StoredRole | undefined> {
    const row = await this.db
      .selectFrom('tuf_metadata')
      .select(['version', 'expires_at', 'body'])
      .where('repository', '=', DIRECTOR_ROOT_REPOSITORY)
      .where('role', '=', 'root')
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && { version: Number(row.version), expiresAt: row.expires_at, body: row.body };
  }

  /**
   * The soonest expiry per role over every node's latest version (and the shared root's): what a metrics
   * alert watches. Each node role is one probe of its expiry column's index on director_assignments (kept by
   * commitSet, migration 0010_fleet_aggregates), the root one probe of the primary key: no pass over the
   * nodes, whatever the fleet's size.
   */
  async soonestExpiries(): Promise<Array<{ role: string; expiresAt: string }>> {
    // One scalar subquery per column: SQLite answers a min() from an index only when it is the query's sole
    // aggregate (three min()s in one SELECT scan the table).
    const soonest = (column: `${NodeRole}_expires_at`) =>
      this.db.selectFrom('director_assignments').select((eb) => eb.fn.min(column).as('v'));
    const row = await this.db
      .selectNoFrom([
        soonest('targets_expires_at').as('targets'),
        soonest('snapshot_expires_at').as('snapshot'),
        soonest('timestamp_expires_at').as('timestamp'),
      ])
      .executeTakeFirstOrThrow();
    const root = await this.latestRoot();
    const found: Array<{ role: string; expiresAt: string }> = root
      ? [{ role: 'root', expiresAt: root.expiresAt }]
      : [];
    for (const role of NODE_ROLES) {
      const expiresAt = row[role];
      if (expiresAt !== null) found.push({ role, expiresAt: String(expiresAt) });
    }
    return found;
  }

  /** Fails with a unique violation when that root version exists already (a concurrent publish won). */
  async insertRoot(root: StoredRole): Promise<void> {
    await this.db
      .insertInto('tuf_metadata')
      .values({
        repository: DIRECTOR_ROOT_REPOSITORY,
        role: 'root',
        version: root.version,
        expires_at: root.expiresAt,
        body: root.body,
        created_at: new Date().toISOString(),
      })
      .execute();
  }

  /**
   * Stores a node's new targets, snapshot and timestamp in one transaction, only if the assignment is still
   * the generation they were made from (else AssignmentChangedError), and drops the node's versions older
   * than `keepFrom` (a client mid-poll may still ask for the set before this one). Two replicas signing the
   * same versions at once: the second fails with a unique violation and nothing of it is kept.
   */
  async commitSet(
    nodeId: string,
    generation: number,
    writes: RoleWrite[],
    keepFrom: Partial<Record<NodeRole, number>>,
  ): Promise<void> {
    const repository = nodeRepository(nodeId);
    const now = new Date().toISOString();
    await this.db.transaction().execute(async (tx) => {
      // First, so that on PostgreSQL the row lock orders this commit after a concurrent assignment change.
      const marked = await tx
        .updateTable('director_assignments')
        .set({ metadata_generation: generation, ...expiryColumns(writes) })
        .where('node_id', '=', nodeId)
        .where('generation', '=', generation)
        .executeTakeFirst();
      if (Number(marked.numUpdatedRows) !== 1) throw new AssignmentChangedError();
      await tx
        .insertInto('tuf_metadata')
        .values(
          writes.map((w) => ({
            repository,
            role: w.role,
            version: w.version,
            expires_at: w.expiresAt,
            body: w.body,
            created_at: now,
          })),
        )
        .execute();
      const older = Object.entries(keepFrom).filter(
        (entry): entry is [string, number] => entry[1] !== undefined,
      );
      if (older.length > 0) {
        // One statement for the three roles: each round trip inside the transaction is paid on every re-sign.
        await tx
          .deleteFrom('tuf_metadata')
          .where('repository', '=', repository)
          .where((eb) =>
            eb.or(
              older.map(([role, version]) => eb.and([eb('role', '=', role), eb('version', '<', version)])),
            ),
          )
          .execute();
      }
    });
  }

  /** Every node's metadata is regenerated on its next poll (after a database restore). */
  async invalidateAll(): Promise<number> {
    const result = await this.db
      .updateTable('director_assignments')
      .set({ metadata_generation: null })
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}

/** The soonest-expiry columns of the node roles a commit writes (what soonestExpiries() reads). */
function expiryColumns(writes: readonly RoleWrite[]): Partial<Record<`${NodeRole}_expires_at`, string>> {
  const columns: Partial<Record<`${NodeRole}_expires_at`, string>> = {};
  for (const w of writes) if (w.role !== 'root') columns[`${w.role}_expires_at`] = w.expiresAt;
  return columns;
}
