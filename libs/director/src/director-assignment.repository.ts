import { Inject, Injectable } from '@nestjs/common';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { DB, type Database, type Db } from '#otter/db';
import {
  assertValidAssignment,
  type DirectorAssignment,
  type DirectorAssignmentInput,
} from './director-assignment.js';
import { HeldTimestamps } from './held-timestamps.js';

/** Any Kysely executor: the scheduler passes its transaction so an assignment commits with its own state. */
export type DirectorExecutor = Kysely<Database> | Transaction<Database>;

type AssignmentRow = Selectable<Database['director_assignments']>;

/** Rows per multi-row upsert: 11 parameters each, well inside both dialects' limits. */
const ASSIGN_CHUNK = 1000;

/**
 * What the director tells each node to run. Every change bumps `generation`; the director regenerates a
 * node's signed metadata lazily, on the node's next poll, when the generation it was made from differs.
 * Each method is one statement, so it is atomic inside or outside the caller's transaction.
 */
@Injectable()
export class DirectorAssignmentRepository {
  constructor(
    @Inject(DB) private readonly db: Db,
    /**
     * This process's held poll answers (DirectorRepository.heldTimestamp): a write drops the nodes' entries,
     * so a poll served here sees it at once; other processes' holds expire within POLL_HOLD_MS.
     */
    @Inject(HeldTimestamps) private readonly held: HeldTimestamps = new HeldTimestamps(),
  ) {}

  /** Upserts the image a node should run; the generation grows only if something actually changed. */
  async assign(input: DirectorAssignmentInput, db: DirectorExecutor = this.db): Promise<DirectorAssignment> {
    const updated = await this.upsert([input], db).returningAll().executeTakeFirst();
    this.held.delete(input.nodeId);
    // Nothing changed: the upsert's WHERE skipped the update and returned no row.
    return toAssignment(updated ?? (await this.row(input.nodeId, db))!);
  }

  /**
   * assign() for many nodes in chunked multi-row statements: a scheduler admitting a 10,000-node wave would
   * otherwise spend seconds on one round trip per node.
   */
  async assignMany(
    inputs: readonly DirectorAssignmentInput[],
    db: DirectorExecutor = this.db,
  ): Promise<void> {
    for (let i = 0; i < inputs.length; i += ASSIGN_CHUNK) {
      await this.upsert(inputs.slice(i, i + ASSIGN_CHUNK), db).execute();
    }
    for (const input of inputs) this.held.delete(input.nodeId);
  }

  private upsert(inputs: readonly DirectorAssignmentInput[], db: DirectorExecutor) {
    inputs.forEach(assertValidAssignment);
    const now = new Date().toISOString();
    return db
      .insertInto('director_assignments')
      .values(
        inputs.map((input) => ({
          node_id: input.nodeId,
          hardware_id: input.hardwareId,
          release_id: input.releaseId,
          target_path: input.targetPath,
          version: input.version,
          sha256: input.sha256,
          length: input.length,
          rollout_id: input.rolloutId,
          generation: 1,
          metadata_generation: null,
          updated_at: now,
        })),
      )
      .onConflict((oc) =>
        oc
          .column('node_id')
          .doUpdateSet((eb) => ({
            hardware_id: eb.ref('excluded.hardware_id'),
            release_id: eb.ref('excluded.release_id'),
            target_path: eb.ref('excluded.target_path'),
            version: eb.ref('excluded.version'),
            sha256: eb.ref('excluded.sha256'),
            length: eb.ref('excluded.length'),
            rollout_id: eb.ref('excluded.rollout_id'),
            generation: eb('director_assignments.generation', '+', 1),
            updated_at: eb.ref('excluded.updated_at'),
          }))
          .where((eb) =>
            eb.or(
              (
                [
                  'hardware_id',
                  'release_id',
                  'target_path',
                  'version',
                  'sha256',
                  'length',
                  'rollout_id',
                ] as const
              ).map((c) => eb(`director_assignments.${c}`, 'is distinct from', eb.ref(`excluded.${c}`))),
            ),
          ),
      );
  }

  /**
   * The node is told to run nothing new (no image target). The generation grows if the node had an image or
   * a rollout; clearing a node the director never named anything for changes nothing and returns undefined.
   */
  async clear(nodeId: string, db: DirectorExecutor = this.db): Promise<DirectorAssignment | undefined> {
    const updated = await db
      .updateTable('director_assignments')
      .set((eb) => ({
        release_id: null,
        target_path: null,
        version: null,
        sha256: null,
        length: null,
        rollout_id: null,
        generation: eb('generation', '+', 1),
        updated_at: new Date().toISOString(),
      }))
      .where('node_id', '=', nodeId)
      .where((eb) => eb.or([eb('target_path', 'is not', null), eb('rollout_id', 'is not', null)]))
      .returningAll()
      .executeTakeFirst();
    this.held.delete(nodeId);
    const row = updated ?? (await this.row(nodeId, db));
    return row && toAssignment(row);
  }

  async get(nodeId: string, db: DirectorExecutor = this.db): Promise<DirectorAssignment | undefined> {
    const row = await this.row(nodeId, db);
    return row && toAssignment(row);
  }

  private row(nodeId: string, db: DirectorExecutor): Promise<AssignmentRow | undefined> {
    return db.selectFrom('director_assignments').selectAll().where('node_id', '=', nodeId).executeTakeFirst();
  }
}

export function toAssignment(r: AssignmentRow): DirectorAssignment {
  const image =
    r.release_id !== null &&
    r.target_path !== null &&
    r.version !== null &&
    r.sha256 !== null &&
    r.length !== null
      ? {
          releaseId: r.release_id,
          targetPath: r.target_path,
          version: r.version,
          sha256: r.sha256,
          length: Number(r.length),
        }
      : null;
  return {
    nodeId: r.node_id,
    hardwareId: r.hardware_id,
    image,
    rolloutId: r.rollout_id,
    generation: Number(r.generation),
    metadataGeneration: r.metadata_generation === null ? null : Number(r.metadata_generation),
    updatedAt: r.updated_at,
  };
}
