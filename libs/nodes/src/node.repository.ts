import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { NodeIdentityState } from '#otter/contracts';
import type { Selectable } from 'kysely';
import { DB, type Db, type NodeTable } from '#otter/db';
import { NodeHistoryLimits } from '#otter/retention';
import type { EnrolledNodeState, NodeTransition } from './node-transitions.js';

export interface NodeRecord {
  id: string;
  hardwareId: string;
  state: NodeIdentityState;
  ekPublicSha256: string;
  ekCertSerial: string;
  ekCertIssuer: string;
  akPublic: Buffer;
  devicePublic: Buffer | null;
  deviceCertSerial: string | null;
  deviceCertNotAfter: string | null;
  pinnedPcrs: Record<string, string>;
  runningVersion: string | null;
  tpmCounters: { resetCount: number; restartCount: number; clock: bigint } | null;
  integrityFailedAt: string | null;
  labels: Record<string, string>;
  createdAt: string;
  /** The TPM's EK key, sha256 of its SubjectPublicKeyInfo (null only for a node whose key was never known). */
  ekKeySha256: string | null;
  /** The EK certificate, sha256 of issuer + serial. */
  ekIssuerSerialSha256: string | null;
  /** An open re-enrollment window (`otter node re-enroll`): its end, and who opened it. */
  reenrollUntil: string | null;
  reenrollBy: string | null;
  /** The last authenticated device request, to about five minutes (NodeRepository.touch). */
  lastSeenAt: string | null;
  /** The newest verdict as the row keeps it (written with each verdict). */
  lastVerdict: { passed: boolean; reason: string; at: string } | null;
}

/** A PCR of a verdict's quote that differed from what it should be (or was not quoted: `quoted` null). */
export interface VerdictMismatch {
  pcr: number;
  quoted: string | null;
  reference: string;
  source: 'pinned' | 'reference';
}

export interface VerdictRecord {
  nodeId: string;
  passed: boolean;
  reason: string;
  pcrValues: Record<string, string>;
  releaseVersion: string | null;
  /** Passed against signed measurements of releaseVersion beyond the pinned PCRs: proof the release booted. */
  releaseProven: boolean;
  /** The PCRs that differed; null for verdicts stored before Otter kept them. */
  mismatches: VerdictMismatch[] | null;
  createdAt: string;
}

/** An update step the agent reported (device_reports of kind `update`). */
export interface UpdateStepRecord {
  step: string;
  ok: boolean;
  version: string | null;
  bytes: number | null;
  detail: string;
  reportedAt: string;
  receivedAt: string;
}

export type NewNode = Pick<
  NodeRecord,
  | 'hardwareId'
  | 'ekPublicSha256'
  | 'ekCertSerial'
  | 'ekCertIssuer'
  | 'akPublic'
  | 'pinnedPcrs'
  | 'runningVersion'
> & { state: EnrolledNodeState; ekKeySha256: string; ekIssuerSerialSha256: string };

/** Fields a node's own activity changes; its identity state changes only through transition(). */
export type NodeChange = Partial<{
  devicePublic: Buffer;
  deviceCertSerial: string;
  deviceCertNotAfter: string;
  pinnedPcrs: Record<string, string>;
  runningVersion: string | null;
  tpmCounters: { resetCount: number; restartCount: number; clock: bigint };
  integrityFailedAt: string | null;
}>;

/** What a re-enrollment replaces: the AK, the pinned boot state and what the re-imaged board runs. */
export interface Reenrollment {
  /** The EK public area as the board sent it this time (the same key; the row keeps its hash). */
  ekPublicSha256: string;
  akPublic: Buffer;
  pinnedPcrs: Record<string, string>;
  runningVersion: string | null;
  tpmCounters: { resetCount: number; restartCount: number; clock: bigint };
}

/** The only place that reads or writes nodes, their verdicts and their reports. */
@Injectable()
export class NodeRepository {
  constructor(
    @Inject(DB) private readonly db: Db,
    private readonly limits: NodeHistoryLimits,
  ) {}

  /**
   * A new node; undefined when a node already holds this TPM (its EK key, EK certificate or EK public area):
   * the unique indexes decide, so two enrollments of one TPM racing each other cannot both make a node.
   */
  async create(node: NewNode): Promise<NodeRecord | undefined> {
    const now = new Date().toISOString();
    const id = randomUUID();
    const result = await this.db
      .insertInto('nodes')
      .values({
        id,
        hardware_id: node.hardwareId,
        state: node.state,
        ek_public_sha256: node.ekPublicSha256,
        ek_cert_serial: node.ekCertSerial,
        ek_cert_issuer: node.ekCertIssuer,
        ak_public: node.akPublic.toString('base64'),
        device_public: null,
        device_cert_serial: null,
        device_cert_not_after: null,
        pinned_pcrs: JSON.stringify(node.pinnedPcrs),
        running_version: node.runningVersion,
        tpm_reset_count: null,
        tpm_restart_count: null,
        tpm_clock: null,
        integrity_failed_at: null,
        created_at: now,
        updated_at: now,
        ek_key_sha256: node.ekKeySha256,
        ek_issuer_serial_sha256: node.ekIssuerSerialSha256,
        reenroll_until: null,
        reenroll_by: null,
      })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    if (Number(result.numInsertedOrUpdatedRows ?? 0) !== 1) return undefined;
    return this.get(id);
  }

  async get(id: string): Promise<NodeRecord | undefined> {
    const row = await this.db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  /**
   * Of these nodes, the active ones that hold a device key, in one query, each with that key as the row stores
   * it (TPM2B_PUBLIC in base64: deviceKeyThumbprint takes the text as it is, with no decoding per poll).
   */
  async activeDeviceKeysAmong(ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('nodes')
      .select(['id', 'device_public'])
      .where('id', 'in', ids)
      .where('state', '=', 'active')
      .where('device_public', 'is not', null)
      .execute();
    return new Map(rows.map((r) => [r.id, r.device_public!]));
  }

  /**
   * Every node, in any state (revoked and rejected included), that holds this TPM: by its EK key, by its EK
   * certificate's issuer + serial, or by the exact EK public area.
   */
  async findTpmHolders(tpm: {
    ekKeySha256: string;
    ekIssuerSerialSha256: string;
    ekPublicSha256: string;
  }): Promise<NodeRecord[]> {
    const rows = await this.db
      .selectFrom('nodes')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb('ek_key_sha256', '=', tpm.ekKeySha256),
          eb('ek_issuer_serial_sha256', '=', tpm.ekIssuerSerialSha256),
          eb('ek_public_sha256', '=', tpm.ekPublicSha256),
        ]),
      )
      .orderBy('created_at')
      .execute();
    return rows.map(toRecord);
  }

  /**
   * Opens the node's re-enrollment window until `until`, if it is in one of `states`; false otherwise (or no
   * such node). Opening it again moves the end.
   */
  async openReenrollment(
    id: string,
    window: { until: string; by: string },
    states: readonly NodeIdentityState[],
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('nodes')
      .set({ reenroll_until: window.until, reenroll_by: window.by, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('state', 'in', states)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Re-pins the node to a re-enrolled TPM and closes its window, in one compare-and-set: only while the window
   * is open at `now`, the node holds this EK key and is still in `fromState`. Its device key and certificate
   * are dropped (the re-imaged board makes a new one); it becomes `toState`. False when anything differed.
   */
  async completeReenrollment(
    id: string,
    expected: { ekKeySha256: string; fromState: NodeIdentityState; now: string },
    toState: NodeIdentityState,
    change: Reenrollment,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('nodes')
      .set({
        state: toState,
        ek_public_sha256: change.ekPublicSha256,
        ak_public: change.akPublic.toString('base64'),
        pinned_pcrs: JSON.stringify(change.pinnedPcrs),
        running_version: change.runningVersion,
        tpm_reset_count: change.tpmCounters.resetCount,
        tpm_restart_count: change.tpmCounters.restartCount,
        tpm_clock: change.tpmCounters.clock.toString(),
        device_public: null,
        device_cert_serial: null,
        device_cert_not_after: null,
        reenroll_until: null,
        reenroll_by: null,
        updated_at: expected.now,
      })
      .where('id', '=', id)
      .where('ek_key_sha256', '=', expected.ekKeySha256)
      .where('state', '=', expected.fromState)
      .where('reenroll_until', '>', expected.now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async list(): Promise<NodeRecord[]> {
    return (await this.db.selectFrom('nodes').selectAll().orderBy('created_at').execute()).map(toRecord);
  }

  async update(id: string, change: NodeChange): Promise<void> {
    await this.db.updateTable('nodes').set(toChangeRow(change)).where('id', '=', id).execute();
  }

  /**
   * Compare-and-set of the node's identity state, with `change` in the same statement: true only when the
   * node was in one of `transition.from` (one row updated); false when it was not, or does not exist.
   */
  async transition(id: string, transition: NodeTransition, change: NodeChange = {}): Promise<boolean> {
    const result = await this.db
      .updateTable('nodes')
      .set({ ...toChangeRow(change), state: transition.to })
      .where('id', '=', id)
      .where('state', 'in', [...transition.from])
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Replaces the whole label set; the caller has validated it. */
  async setLabels(id: string, labels: Record<string, string>): Promise<boolean> {
    // node_labels mirrors the JSON (what the node list filters by): both change together or neither does.
    return this.db.transaction().execute(async (trx) => {
      const node = await trx
        .updateTable('nodes')
        .set({ labels: JSON.stringify(labels), updated_at: new Date().toISOString() })
        .where('id', '=', id)
        .returning('created_at')
        .executeTakeFirst();
      if (!node) return false;
      await trx.deleteFrom('node_labels').where('node_id', '=', id).execute();
      const rows = Object.entries(labels).map(([key, value]) => ({
        node_id: id,
        key,
        value,
        node_created_at: node.created_at,
      }));
      if (rows.length > 0) await trx.insertInto('node_labels').values(rows).execute();
      return true;
    });
  }

  /**
   * Marks the node seen at `now`, unless the row already says it was seen since `since` (another api process
   * got there first): one cheap update, and none when nothing moved.
   */
  async touch(id: string, now: string, since: string): Promise<void> {
    await this.db
      .updateTable('nodes')
      .set({ last_seen_at: now })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', since)]))
      .execute();
  }

  /** Stores the verdict and makes it the node's last one on its row, in one transaction. */
  async addVerdict(verdict: Omit<VerdictRecord, 'createdAt'>): Promise<VerdictRecord> {
    const createdAt = new Date().toISOString();
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('attestation_verdicts')
        .values({
          id: randomUUID(),
          node_id: verdict.nodeId,
          passed: verdict.passed ? 1 : 0,
          reason: verdict.reason,
          pcr_values: JSON.stringify(verdict.pcrValues),
          release_version: verdict.releaseVersion,
          release_proven: verdict.releaseProven ? 1 : 0,
          created_at: createdAt,
          pcr_mismatches: verdict.mismatches === null ? null : JSON.stringify(verdict.mismatches),
        })
        .execute();
      await trx
        .updateTable('nodes')
        .set({
          last_verdict_passed: verdict.passed ? 1 : 0,
          last_verdict_reason: verdict.reason,
          last_verdict_at: createdAt,
        })
        .where('id', '=', verdict.nodeId)
        .execute();
    });
    await this.limits.afterInsert('attestation_verdicts', verdict.nodeId);
    return { ...verdict, createdAt };
  }

  async latestVerdict(nodeId: string): Promise<VerdictRecord | undefined> {
    return (await this.verdicts(nodeId, 1))[0];
  }

  /** The node's newest `limit` verdicts, newest first. */
  async verdicts(nodeId: string, limit: number): Promise<VerdictRecord[]> {
    const rows = await this.db
      .selectFrom('attestation_verdicts')
      .selectAll()
      .where('node_id', '=', nodeId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((row) => ({
      nodeId: row.node_id,
      passed: Number(row.passed) === 1,
      reason: row.reason,
      pcrValues: JSON.parse(row.pcr_values) as Record<string, string>,
      releaseVersion: row.release_version,
      releaseProven: Number(row.release_proven) === 1,
      mismatches: row.pcr_mismatches === null ? null : (JSON.parse(row.pcr_mismatches) as VerdictMismatch[]),
      createdAt: row.created_at,
    }));
  }

  /** The node's newest `limit` update steps (what its agent reported), newest first. */
  async updateSteps(nodeId: string, limit: number): Promise<UpdateStepRecord[]> {
    const rows = await this.db
      .selectFrom('device_reports')
      .selectAll()
      .where('node_id', '=', nodeId)
      .where('kind', '=', 'update')
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      step: r.event,
      ok: Number(r.ok) === 1,
      version: r.version,
      bytes: r.bytes === null ? null : Number(r.bytes),
      detail: r.detail,
      reportedAt: r.reported_at,
      receivedAt: r.created_at,
    }));
  }

  async addReport(report: {
    nodeId: string;
    kind: string;
    ok: boolean;
    event: string;
    detail: string;
    reportedAt: string;
  }): Promise<void> {
    await this.db
      .insertInto('device_reports')
      .values({
        id: randomUUID(),
        node_id: report.nodeId,
        kind: report.kind,
        ok: report.ok ? 1 : 0,
        event: report.event,
        detail: report.detail,
        reported_at: report.reportedAt,
        created_at: new Date().toISOString(),
      })
      .execute();
    await this.limits.afterInsert('device_reports', report.nodeId);
  }

  async countVerdicts(nodeId: string): Promise<number> {
    const row = await this.db
      .selectFrom('attestation_verdicts')
      .select(({ fn }) => fn.countAll<number | string>().as('n'))
      .where('node_id', '=', nodeId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

function toChangeRow(change: NodeChange) {
  return {
    ...(change.devicePublic !== undefined && { device_public: change.devicePublic.toString('base64') }),
    ...(change.deviceCertSerial !== undefined && { device_cert_serial: change.deviceCertSerial }),
    ...(change.deviceCertNotAfter !== undefined && { device_cert_not_after: change.deviceCertNotAfter }),
    ...(change.pinnedPcrs !== undefined && { pinned_pcrs: JSON.stringify(change.pinnedPcrs) }),
    ...(change.runningVersion !== undefined && { running_version: change.runningVersion }),
    ...(change.tpmCounters !== undefined && {
      tpm_reset_count: change.tpmCounters.resetCount,
      tpm_restart_count: change.tpmCounters.restartCount,
      tpm_clock: change.tpmCounters.clock.toString(),
    }),
    ...(change.integrityFailedAt !== undefined && { integrity_failed_at: change.integrityFailedAt }),
    updated_at: new Date().toISOString(),
  };
}

export function toRecord(r: Selectable<NodeTable>): NodeRecord {
  return {
    id: r.id,
    hardwareId: r.hardware_id,
    state: r.state as NodeIdentityState,
    ekPublicSha256: r.ek_public_sha256,
    ekCertSerial: r.ek_cert_serial,
    ekCertIssuer: r.ek_cert_issuer,
    akPublic: Buffer.from(r.ak_public, 'base64'),
    devicePublic: r.device_public ? Buffer.from(r.device_public, 'base64') : null,
    deviceCertSerial: r.device_cert_serial,
    deviceCertNotAfter: r.device_cert_not_after,
    pinnedPcrs: JSON.parse(r.pinned_pcrs) as Record<string, string>,
    runningVersion: r.running_version,
    tpmCounters:
      r.tpm_reset_count === null || r.tpm_restart_count === null || r.tpm_clock === null
        ? null
        : {
            resetCount: Number(r.tpm_reset_count),
            restartCount: Number(r.tpm_restart_count),
            clock: BigInt(r.tpm_clock),
          },
    integrityFailedAt: r.integrity_failed_at,
    labels: JSON.parse(r.labels) as Record<string, string>,
    createdAt: r.created_at,
    ekKeySha256: r.ek_key_sha256,
    ekIssuerSerialSha256: r.ek_issuer_serial_sha256,
    reenrollUntil: r.reenroll_until,
    reenrollBy: r.reenroll_by,
    lastSeenAt: r.last_seen_at,
    lastVerdict:
      r.last_verdict_at === null
        ? null
        : {
            passed: Number(r.last_verdict_passed) === 1,
            reason: r.last_verdict_reason ?? '',
            at: r.last_verdict_at,
          },
  };
}
