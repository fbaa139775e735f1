import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Selectable } from 'kysely';
import type {
  MaintenanceWindow,
  RolloutNodeState,
  RolloutSelector,
  RolloutState,
  WaveSpec,
} from '#otter/contracts';
import { DB, type Db, type RolloutNodeTable, type RolloutTable } from '#otter/db';
import { NodeHistoryLimits } from '#otter/retention';

export interface RolloutRecord {
  id: string;
  name: string;
  releaseId: string;
  hardwareId: string;
  selector: RolloutSelector;
  waves: WaveSpec[];
  successThreshold: number;
  failureThreshold: number;
  maxAttestationAgeSeconds: number;
  maintenanceWindow: MaintenanceWindow | null;
  maxConcurrent: number | null;
  nodeDeadlineSeconds: number;
  state: RolloutState;
  stateReason: string | null;
  currentWave: number;
  waveStartedAt: string | null;
  revision: number;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RolloutNodeRecord {
  rolloutId: string;
  nodeId: string;
  wave: number;
  state: RolloutNodeState;
  reason: string | null;
  fromVersion: string | null;
  admittedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export type RolloutChange = Partial<
  Pick<RolloutRecord, 'state' | 'stateReason' | 'currentWave' | 'waveStartedAt' | 'startedAt' | 'finishedAt'>
>;

/** Counts of a rollout's nodes by wave and state. */
export type WaveCounts = Map<number, Map<RolloutNodeState, number>>;

/** SQLite's default limit on bound parameters is high, but PostgreSQL's IN lists get slow past a few thousand. */
const CHUNK = 1000;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** The only place that reads or writes rollouts, rollout_nodes and rollout_memberships. */
@Injectable()
export class RolloutRepository {
  constructor(
    @Inject(DB) private readonly db: Db,
    private readonly limits: NodeHistoryLimits,
  ) {}

  transaction<T>(work: (trx: Db) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(work);
  }

  async insert(record: Omit<RolloutRecord, 'revision'>): Promise<void> {
    const now = new Date().toISOString();
    await this.db
      .insertInto('rollouts')
      .values({
        id: record.id,
        name: record.name,
        release_id: record.releaseId,
        hardware_id: record.hardwareId,
        selector: JSON.stringify(record.selector),
        waves: JSON.stringify(record.waves),
        success_threshold: record.successThreshold,
        failure_threshold: record.failureThreshold,
        max_attestation_age_seconds: record.maxAttestationAgeSeconds,
        maintenance_window: record.maintenanceWindow ? JSON.stringify(record.maintenanceWindow) : null,
        max_concurrent: record.maxConcurrent,
        node_deadline_seconds: record.nodeDeadlineSeconds,
        state: record.state,
        state_reason: record.stateReason,
        current_wave: record.currentWave,
        wave_started_at: record.waveStartedAt,
        revision: 0,
        created_by: record.createdBy,
        created_at: record.createdAt,
        started_at: record.startedAt,
        finished_at: record.finishedAt,
        updated_at: now,
      })
      .execute();
  }

  async get(id: string, db: Db = this.db): Promise<RolloutRecord | undefined> {
    const row = await db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  async list(): Promise<RolloutRecord[]> {
    const rows = await this.db.selectFrom('rollouts').selectAll().orderBy('created_at', 'desc').execute();
    return rows.map(toRecord);
  }

  async idsInState(state: RolloutState): Promise<string[]> {
    const rows = await this.db.selectFrom('rollouts').select('id').where('state', '=', state).execute();
    return rows.map((r) => r.id);
  }

  /**
   * Compare-and-set on the revision: true only for the one caller that saw the current revision. Run as the
   * first statement of a transaction it also takes the row's write lock (PostgreSQL) or the database's
   * (SQLite), so a second scheduler waits, then finds the revision moved and backs off.
   */
  async claim(id: string, revision: number, db: Db, change: RolloutChange = {}): Promise<boolean> {
    const result = await db
      .updateTable('rollouts')
      .set({ ...toRow(change), revision: revision + 1, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('revision', '=', revision)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** An unconditional change, for a caller that already holds the row through claim(). */
  async update(id: string, change: RolloutChange, db: Db): Promise<void> {
    await db
      .updateTable('rollouts')
      .set({ ...toRow(change), updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
  }

  async releaseMembership(rolloutId: string, nodeId: string, db: Db): Promise<void> {
    await db
      .deleteFrom('rollout_memberships')
      .where('rollout_id', '=', rolloutId)
      .where('node_id', '=', nodeId)
      .execute();
  }

  /** An agent's update step, kept with the node's other reports for the timeline. */
  async addUpdateReport(
    nodeId: string,
    report: {
      step: string;
      ok: boolean;
      detail: string;
      reportedAt: string;
      version: string;
      bytes: number | null;
    },
  ): Promise<void> {
    await this.db
      .insertInto('device_reports')
      .values({
        id: randomUUID(),
        node_id: nodeId,
        kind: 'update',
        ok: report.ok ? 1 : 0,
        event: report.step,
        detail: report.detail,
        reported_at: report.reportedAt,
        created_at: new Date().toISOString(),
        version: report.version,
        bytes: report.bytes,
      })
      .execute();
    await this.limits.afterInsert('device_reports', nodeId);
  }

  /** Nodes of a hardware id that may take part in a rollout (active identity), with their labels. */
  async activeNodes(
    hardwareId: string,
    db: Db = this.db,
  ): Promise<Array<{ id: string; labels: Record<string, string> }>> {
    const rows = await db
      .selectFrom('nodes')
      .select(['id', 'labels'])
      .where('hardware_id', '=', hardwareId)
      .where('state', '=', 'active')
      .execute();
    return rows.map((r) => ({ id: r.id, labels: JSON.parse(r.labels) as Record<string, string> }));
  }

  /** Which of these nodes already belong to an unfinished rollout, and to which. */
  async memberships(nodeIds: readonly string[], db: Db = this.db): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const part of chunks(nodeIds)) {
      const rows = await db
        .selectFrom('rollout_memberships')
        .selectAll()
        .where('node_id', 'in', part)
        .execute();
      for (const r of rows) out.set(r.node_id, r.rollout_id);
    }
    return out;
  }

  async addNodes(rolloutId: string, waves: string[][], db: Db): Promise<void> {
    const now = new Date().toISOString();
    const rows = waves.flatMap((ids, wave) => ids.map((nodeId) => ({ nodeId, wave })));
    for (const part of chunks(rows)) {
      await db
        .insertInto('rollout_memberships')
        .values(part.map((r) => ({ node_id: r.nodeId, rollout_id: rolloutId })))
        .execute();
      await db
        .insertInto('rollout_nodes')
        .values(
          part.map((r) => ({
            rollout_id: rolloutId,
            node_id: r.nodeId,
            wave: r.wave,
            state: 'pending',
            reason: null,
            from_version: null,
            admitted_at: null,
            finished_at: null,
            updated_at: now,
          })),
        )
        .execute();
    }
  }

  async releaseMemberships(rolloutId: string, db: Db): Promise<void> {
    await db.deleteFrom('rollout_memberships').where('rollout_id', '=', rolloutId).execute();
  }

  async counts(rolloutId: string, db: Db = this.db): Promise<WaveCounts> {
    const rows = await db
      .selectFrom('rollout_nodes')
      .select(['wave', 'state', ({ fn }) => fn.countAll<string | number>().as('n')])
      .where('rollout_id', '=', rolloutId)
      .groupBy(['wave', 'state'])
      .execute();
    const out: WaveCounts = new Map();
    for (const r of rows) {
      const wave = Number(r.wave);
      if (!out.has(wave)) out.set(wave, new Map());
      out.get(wave)!.set(r.state as RolloutNodeState, Number(r.n));
    }
    return out;
  }

  /**
   * Nodes of a wave in the given states, each with its latest attestation verdict (correlated subqueries
   * on the (node_id, created_at) index: one index probe per node).
   */
  async candidates(
    rolloutId: string,
    wave: number,
    states: readonly RolloutNodeState[],
    db: Db,
  ): Promise<
    Array<{
      nodeId: string;
      state: RolloutNodeState;
      runningVersion: string | null;
      verdict: { passed: boolean; reason: string; createdAt: string } | null;
    }>
  > {
    const rows = await db
      .selectFrom('rollout_nodes as rn')
      .innerJoin('nodes as n', 'n.id', 'rn.node_id')
      .select((eb) => {
        const latest = (column: 'passed' | 'reason' | 'created_at') =>
          eb
            .selectFrom('attestation_verdicts as v')
            .select(`v.${column}`)
            .whereRef('v.node_id', '=', 'rn.node_id')
            .orderBy('v.created_at', 'desc')
            .orderBy('v.id', 'desc')
            .limit(1);
        return [
          'rn.node_id',
          'rn.state',
          'n.running_version',
          latest('passed').as('v_passed'),
          latest('reason').as('v_reason'),
          latest('created_at').as('v_created_at'),
        ];
      })
      .where('rn.rollout_id', '=', rolloutId)
      .where('rn.wave', '=', wave)
      .where('rn.state', 'in', [...states])
      .orderBy('rn.node_id')
      .execute();
    return rows.map((r) => ({
      nodeId: r.node_id,
      state: r.state as RolloutNodeState,
      runningVersion: r.running_version,
      verdict:
        r.v_created_at === null || r.v_created_at === undefined
          ? null
          : {
              passed: Number(r.v_passed) === 1,
              reason: String(r.v_reason),
              createdAt: String(r.v_created_at),
            },
    }));
  }

  /**
   * Committed nodes with a verdict proving `version` (it passed against the release's signed measurements of
   * PCRs beyond the pinned ones) taken after they were admitted: the proof the update succeeded. A verdict that
   * matched only the pinned boot state has release_proven = 0 and never counts.
   */
  async provenCommitted(rolloutId: string, version: string, db: Db): Promise<string[]> {
    const rows = await db
      .selectFrom('rollout_nodes as rn')
      .select('rn.node_id')
      .where('rn.rollout_id', '=', rolloutId)
      .where('rn.state', '=', 'committed')
      .where(({ exists, selectFrom }) =>
        exists(
          selectFrom('attestation_verdicts as v')
            .select('v.id')
            .whereRef('v.node_id', '=', 'rn.node_id')
            .where('v.passed', '=', 1)
            .where('v.release_proven', '=', 1)
            .where('v.release_version', '=', version)
            .whereRef('v.created_at', '>=', 'rn.admitted_at'),
        ),
      )
      .execute();
    return rows.map((r) => r.node_id);
  }

  async setNodeStates(
    rolloutId: string,
    nodeIds: readonly string[],
    change: {
      state: RolloutNodeState;
      reason?: string | null;
      admittedAt?: string;
      fromVersion?: string | null;
      finished?: boolean;
    },
    db: Db,
  ): Promise<void> {
    const now = new Date().toISOString();
    for (const part of chunks(nodeIds)) {
      await db
        .updateTable('rollout_nodes')
        .set({
          state: change.state,
          ...(change.reason !== undefined ? { reason: change.reason } : {}),
          ...(change.admittedAt ? { admitted_at: change.admittedAt } : {}),
          ...(change.fromVersion !== undefined ? { from_version: change.fromVersion } : {}),
          ...(change.finished ? { finished_at: now } : {}),
          updated_at: now,
        })
        .where('rollout_id', '=', rolloutId)
        .where('node_id', 'in', part)
        .execute();
    }
  }

  /** Moves one node from one of `from` to `to`; false when it was in none of them (a raced or late report). */
  async transitionNode(
    rolloutId: string,
    nodeId: string,
    from: readonly RolloutNodeState[],
    to: RolloutNodeState,
    reason: string | null,
    finished: boolean,
    db: Db = this.db,
  ): Promise<boolean> {
    const now = new Date().toISOString();
    const result = await db
      .updateTable('rollout_nodes')
      .set({ state: to, reason, updated_at: now, ...(finished ? { finished_at: now } : {}) })
      .where('rollout_id', '=', rolloutId)
      .where('node_id', '=', nodeId)
      .where('state', 'in', [...from])
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async node(rolloutId: string, nodeId: string, db: Db = this.db): Promise<RolloutNodeRecord | undefined> {
    const row = await db
      .selectFrom('rollout_nodes')
      .selectAll()
      .where('rollout_id', '=', rolloutId)
      .where('node_id', '=', nodeId)
      .executeTakeFirst();
    return row && toNodeRecord(row);
  }

  async nodesIn(
    rolloutId: string,
    states: readonly RolloutNodeState[],
    db: Db,
  ): Promise<RolloutNodeRecord[]> {
    const rows = await db
      .selectFrom('rollout_nodes')
      .selectAll()
      .where('rollout_id', '=', rolloutId)
      .where('state', 'in', [...states])
      .execute();
    return rows.map(toNodeRecord);
  }

  async nodes(rolloutId: string): Promise<RolloutNodeRecord[]> {
    const rows = await this.db
      .selectFrom('rollout_nodes')
      .selectAll()
      .where('rollout_id', '=', rolloutId)
      .orderBy('wave')
      .orderBy('node_id')
      .execute();
    return rows.map(toNodeRecord);
  }

  /** Every rollout the node took part in (newest first, at most `limit`), with the rollout's own record. */
  async membershipsOf(
    nodeId: string,
    limit: number,
  ): Promise<Array<{ rollout: RolloutRecord; node: RolloutNodeRecord }>> {
    const rows = await this.db
      .selectFrom('rollout_nodes as rn')
      .innerJoin('rollouts as r', 'r.id', 'rn.rollout_id')
      .selectAll('r')
      .select([
        'rn.node_id',
        'rn.wave',
        'rn.state as node_state',
        'rn.reason',
        'rn.from_version',
        'rn.admitted_at',
        'rn.finished_at',
        'rn.updated_at as node_updated_at',
      ])
      .where('rn.node_id', '=', nodeId)
      .orderBy('r.created_at', 'desc')
      .orderBy('r.id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((row) => ({
      rollout: toRecord(row),
      node: toNodeRecord({
        rollout_id: row.id,
        node_id: row.node_id,
        wave: row.wave,
        state: row.node_state,
        reason: row.reason,
        from_version: row.from_version,
        admitted_at: row.admitted_at,
        finished_at: row.finished_at,
        updated_at: row.node_updated_at,
      }),
    }));
  }

  /** The node's place in its unfinished rollout, if any. */
  async activeMembership(nodeId: string): Promise<RolloutNodeRecord | undefined> {
    const row = await this.db
      .selectFrom('rollout_memberships as m')
      .innerJoin('rollout_nodes as rn', (join) =>
        join.onRef('rn.rollout_id', '=', 'm.rollout_id').onRef('rn.node_id', '=', 'm.node_id'),
      )
      .selectAll('rn')
      .where('m.node_id', '=', nodeId)
      .executeTakeFirst();
    return row && toNodeRecord(row);
  }
}

function toRow(change: RolloutChange): Partial<Selectable<RolloutTable>> {
  const row: Partial<Selectable<RolloutTable>> = {};
  if (change.state !== undefined) row.state = change.state;
  if (change.stateReason !== undefined) row.state_reason = change.stateReason;
  if (change.currentWave !== undefined) row.current_wave = change.currentWave;
  if (change.waveStartedAt !== undefined) row.wave_started_at = change.waveStartedAt;
  if (change.startedAt !== undefined) row.started_at = change.startedAt;
  if (change.finishedAt !== undefined) row.finished_at = change.finishedAt;
  return row;
}

function toRecord(r: Selectable<RolloutTable>): RolloutRecord {
  return {
    id: r.id,
    name: r.name,
    releaseId: r.release_id,
    hardwareId: r.hardware_id,
    selector: JSON.parse(r.selector) as RolloutSelector,
    waves: JSON.parse(r.waves) as WaveSpec[],
    successThreshold: Number(r.success_threshold),
    failureThreshold: Number(r.failure_threshold),
    maxAttestationAgeSeconds: Number(r.max_attestation_age_seconds),
    maintenanceWindow: r.maintenance_window ? (JSON.parse(r.maintenance_window) as MaintenanceWindow) : null,
    maxConcurrent: r.max_concurrent === null ? null : Number(r.max_concurrent),
    nodeDeadlineSeconds: Number(r.node_deadline_seconds),
    state: r.state as RolloutState,
    stateReason: r.state_reason,
    currentWave: Number(r.current_wave),
    waveStartedAt: r.wave_started_at,
    revision: Number(r.revision),
    createdBy: r.created_by,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

function toNodeRecord(r: Selectable<RolloutNodeTable>): RolloutNodeRecord {
  return {
    rolloutId: r.rollout_id,
    nodeId: r.node_id,
    wave: Number(r.wave),
    state: r.state as RolloutNodeState,
    reason: r.reason,
    fromVersion: r.from_version,
    admittedAt: r.admitted_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
  };
}
