import { Inject, Injectable } from '@nestjs/common';
import type { EnrollmentAllowKind } from '#otter/contracts';
import { DB, type Db, type EnrollmentTable } from '#otter/db';

export interface EnrollmentRecord {
  id: string;
  hardwareId: string;
  ekKind: 'rsa' | 'ecc';
  ekPublic: Buffer;
  ekPublicSha256: string;
  ekCertSerial: string;
  ekCertIssuer: string;
  akPublic: Buffer;
  secretSha256: string;
  nonce: string;
  runningVersion: string | null;
  attempts: number;
  state: 'challenged' | 'activated' | 'failed';
  expiresAt: string;
  /** The node this enrollment re-enrolls after an admin's `otter node re-enroll`; null for a new node. */
  reenrollNodeId: string | null;
}

/** The only place that reads or writes enrollments and the enrollment allow-list. */
@Injectable()
export class EnrollmentRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  async create(e: Omit<EnrollmentRecord, 'attempts' | 'state'>): Promise<void> {
    await this.db
      .insertInto('enrollments')
      .values({
        id: e.id,
        hardware_id: e.hardwareId,
        ek_kind: e.ekKind,
        ek_public: e.ekPublic.toString('base64'),
        ek_public_sha256: e.ekPublicSha256,
        ek_cert_serial: e.ekCertSerial,
        ek_cert_issuer: e.ekCertIssuer,
        ak_public: e.akPublic.toString('base64'),
        secret_sha256: e.secretSha256,
        nonce: e.nonce,
        running_version: e.runningVersion,
        attempts: 0,
        state: 'challenged',
        expires_at: e.expiresAt,
        created_at: new Date().toISOString(),
        reenroll_node_id: e.reenrollNodeId,
      })
      .execute();
  }

  /** Enrollments still waiting for their activation at `now`, and when the first of them expires. */
  async openSummary(now: Date): Promise<{ count: number; earliestExpiry: string | null }> {
    const row = await this.db
      .selectFrom('enrollments')
      .select(({ fn }) => [fn.countAll<number | string>().as('n'), fn.min('expires_at').as('earliest')])
      .where('state', '=', 'challenged')
      .where('expires_at', '>', now.toISOString())
      .executeTakeFirstOrThrow();
    return { count: Number(row.n), earliestExpiry: row.earliest ?? null };
  }

  async get(id: string): Promise<EnrollmentRecord | undefined> {
    const row = await this.db.selectFrom('enrollments').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  /** Counts a failed answer; the enrollment stays open until it expires or runs out of attempts. */
  async recordFailedAttempt(id: string): Promise<void> {
    await this.db
      .updateTable('enrollments')
      .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
      .where('id', '=', id)
      .execute();
  }

  /** Marks it used; false when another request used it first. */
  async markActivated(id: string): Promise<boolean> {
    const result = await this.db
      .updateTable('enrollments')
      .set({ state: 'activated' })
      .where('id', '=', id)
      .where('state', '=', 'challenged')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Whether an operator pre-approved this EK: by its certificate's issuer + serial, or by its exact public
   * area. Entries of the kind `ek-serial` (a serial without its issuer, before migration 0005) match nothing:
   * another CA may have issued the same serial.
   */
  async isAllowed(tpm: { ekIssuerSerialSha256: string; ekPublicSha256: string }): Promise<boolean> {
    const row = await this.db
      .selectFrom('enrollment_allowlist')
      .select('kind')
      .where((eb) =>
        eb.or([
          eb.and([eb('kind', '=', 'ek-issuer-serial'), eb('value', '=', tpm.ekIssuerSerialSha256)]),
          eb.and([eb('kind', '=', 'ek-public-sha256'), eb('value', '=', tpm.ekPublicSha256)]),
        ]),
      )
      .executeTakeFirst();
    return !!row;
  }

  async allow(kind: EnrollmentAllowKind, value: string, note: string): Promise<void> {
    await this.db
      .insertInto('enrollment_allowlist')
      .values({ kind, value, note, created_at: new Date().toISOString() })
      .onConflict((oc) => oc.columns(['kind', 'value']).doNothing())
      .execute();
  }
}

function toRecord(r: EnrollmentTable): EnrollmentRecord {
  return {
    id: r.id,
    hardwareId: r.hardware_id,
    ekKind: r.ek_kind as 'rsa' | 'ecc',
    ekPublic: Buffer.from(r.ek_public, 'base64'),
    ekPublicSha256: r.ek_public_sha256,
    ekCertSerial: r.ek_cert_serial,
    ekCertIssuer: r.ek_cert_issuer,
    akPublic: Buffer.from(r.ak_public, 'base64'),
    secretSha256: r.secret_sha256,
    nonce: r.nonce,
    runningVersion: r.running_version,
    attempts: Number(r.attempts),
    state: r.state as EnrollmentRecord['state'],
    expiresAt: r.expires_at,
    reenrollNodeId: r.reenroll_node_id,
  };
}
