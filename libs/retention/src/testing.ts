import { randomUUID } from 'node:crypto';
import type { Db } from '#otter/db';
import type { NodeHistoryTable } from './retention.repository.js';

// Test kit for what retention trims and purges (not exported from index.ts): rows as the repositories that own
// these tables write them.

/** A row of `table` for `nodeId`, created at `at`; `tag` is the report's event, the verdict's reason or the
 * download's version, so a test can tell the rows apart. */
export function historyRow(
  table: NodeHistoryTable,
  nodeId: string,
  at: string,
  tag = '',
): Record<string, unknown> {
  const id = randomUUID();
  if (table === 'device_reports')
    return {
      id,
      node_id: nodeId,
      kind: 'health',
      ok: 1,
      event: tag,
      detail: '',
      reported_at: at,
      created_at: at,
    };
  if (table === 'attestation_verdicts')
    return {
      id,
      node_id: nodeId,
      passed: 1,
      reason: tag,
      pcr_values: '{}',
      release_version: null,
      created_at: at,
    };
  return {
    id,
    node_id: nodeId,
    hardware_id: 'rpi4',
    version: tag || '1.0.0',
    method: 'full',
    bytes_downloaded: 10,
    full_bytes: 10,
    created_at: at,
  };
}

/** Inserts rows of one table, 500 a statement. */
export async function insertHistory(
  db: Db,
  table: NodeHistoryTable,
  rows: Array<Record<string, unknown>>,
): Promise<void> {
  for (let i = 0; i < rows.length; i += 500)
    await db
      .insertInto(table)
      .values(rows.slice(i, i + 500) as never)
      .execute();
}

/** An enrollment row (no TPM behind it) that expires at `expiresAt`. */
export function enrollmentRow(
  id: string,
  expiresAt: string,
  createdAt: string,
  state = 'challenged',
): Record<string, unknown> {
  return {
    id,
    hardware_id: 'rpi4',
    ek_kind: 'ecc',
    ek_public: 'AA==',
    ek_public_sha256: 'a'.repeat(64),
    ek_cert_serial: '01',
    ek_cert_issuer: 'CN=x',
    ak_public: 'AA==',
    secret_sha256: 'b'.repeat(64),
    nonce: 'c'.repeat(64),
    running_version: null,
    attempts: 0,
    state,
    expires_at: expiresAt,
    created_at: createdAt,
  };
}
