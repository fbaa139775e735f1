import type { OtterConfig } from '#otter/config';
import type { AuditAction } from '#otter/contracts';
import type { Db } from '#otter/db';
import { AuditRepository } from './audit.repository.js';
import { AuditService } from './audit.service.js';

/** The audit service over a test database, outside Nest. */
export function auditServiceFor(db: Db, config: OtterConfig): AuditService {
  return new AuditService(new AuditRepository(db), config);
}

/** The audit repository over a test database, outside Nest (it is not exported by the lib). */
export function auditRepositoryFor(db: Db): AuditRepository {
  return new AuditRepository(db);
}

/** Writes one `ok` row at `at` (retention tests need old rows); returns nothing, list to read it back. */
export async function insertAuditRow(
  db: Db,
  at: Date,
  row: { action?: AuditAction; targetId?: string; actorName?: string } = {},
): Promise<void> {
  await new AuditRepository(db).insert({
    at: at.toISOString(),
    actor: { tokenId: 'test-token', name: row.actorName ?? 'test', role: 'admin' },
    action: row.action ?? 'node.approved',
    target: { kind: 'node', id: row.targetId ?? null },
    requestId: null,
    source: '127.0.0.1',
    outcome: 'ok',
    changes: {},
  });
}
