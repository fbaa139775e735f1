import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { NodeIdentityState } from '#otter/contracts';
import type { Selectable } from 'kysely';
import { DB, type Db, type NodeTable } from '#otter/db';
import { NodeHistoryLimits } from '#otter/retention';

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
}

export interface VerdictRecord {
  nodeId: string;
  passed: boolean;
  reason: string;
  pcrValues: Record<string, string>;
  releaseVersion: string | null;
  createdAt: string;
}

export type NewNode = Pick<
  NodeRecord,
  | 'hardwareId'
  | 'state'
  | 'ekPublicSha256'
  | 'ekCertSerial'
  | 'ekCertIssuer'
  | 'akPublic'
  | 'pinnedPcrs'
  | 'runningVersion'
>;

/** The only place that reads or writes nodes, their verdicts and their reports. */
@Injectable()
export class NodeRepository {
  constructor(
    @Inject(DB) private readonly db: Db,
    private readonly limits: NodeHistoryLimits,
  ) {}

  async create(node: NewNode): Promise<NodeRecord> {
    const now = new Date().toISOString();
    const id = randomUUID();
    await this.db
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
      })
      .execute();
    return (await this.get(id))!;
  }

  async get(id: string): Promise<NodeRecord | undefined> {
    const row = await this.db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  /** Of these nodes, those in state active, in one query. */
  async activeAmong(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('nodes')
      .select('id')
      .where('id', 'in', ids)
      .where('state', '=', 'active')
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  async findByEk(ekPublicSha256: string): Promise<NodeRecord | undefined> {
    const row = await this.db
      .selectFrom('nodes')
      .selectAll()
      .where('ek_public_sha256', '=', ekPublicSha256)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  async list(): Promise<NodeRecord[]> {
    return (await this.db.selectFrom('nodes').selectAll().orderBy('created_at').execute()).map(toRecord);
  }

  async update(
    id: string,
    change: Partial<{
      state: NodeIdentityState;
      devicePublic: Buffer;
      deviceCertSerial: string;
      deviceCertNotAfter: string;
      pinnedPcrs: Record<string, string>;
      runningVersion: string | null;
      tpmCounters: { resetCount: number; restartCount: number; clock: bigint };
      integrityFailedAt: string | null;
    }>,
  ): Promise<void> {
    await this.db
      .updateTable('nodes')
      .set({
        ...(change.state !== undefined && { state: change.state }),
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
      })
      .where('id', '=', id)
      .execute();
  }

  /** Replaces the whole label set; the caller has validated it. */
  async setLabels(id: string, labels: Record<string, string>): Promise<boolean> {
    const result = await this.db
      .updateTable('nodes')
      .set({ labels: JSON.stringify(labels), updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async addVerdict(verdict: Omit<VerdictRecord, 'createdAt'>): Promise<VerdictRecord> {
    const createdAt = new Date().toISOString();
    await this.db
      .insertInto('attestation_verdicts')
      .values({
        id: randomUUID(),
        node_id: verdict.nodeId,
        passed: verdict.passed ? 1 : 0,
        reason: verdict.reason,
        pcr_values: JSON.stringify(verdict.pcrValues),
        release_version: verdict.releaseVersion,
        created_at: createdAt,
      })
      .execute();
    await this.limits.afterInsert('attestation_verdicts', verdict.nodeId);
    return { ...verdict, createdAt };
  }

  async latestVerdict(nodeId: string): Promise<VerdictRecord | undefined> {
    const row = await this.db
      .selectFrom('attestation_verdicts')
      .selectAll()
      .where('node_id', '=', nodeId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return (
      row && {
        nodeId: row.node_id,
        passed: Number(row.passed) === 1,
        reason: row.reason,
        pcrValues: JSON.parse(row.pcr_values) as Record<string, string>,
        releaseVersion: row.release_version,
        createdAt: row.created_at,
      }
    );
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

function toRecord(r: Selectable<NodeTable>): NodeRecord {
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
  };
}
