import type { AuditAction, AuditOutcome, AuditTargetKind, Role } from '#otter/contracts';

/** Who acted: the management token that authenticated the request (null when none did). */
export interface AuditActor {
  tokenId: string;
  name: string;
  role: Role;
}

export interface AuditTarget {
  kind: AuditTargetKind;
  id: string | null;
}

/** One row as written; the repository adds the id. */
export interface NewAuditEntry {
  at: string;
  actor: AuditActor | null;
  action: AuditAction;
  target: AuditTarget;
  requestId: string | null;
  source: string | null;
  outcome: AuditOutcome;
  changes: Record<string, unknown>;
}

/** The filters of GET /api/v1/audit, checked already. */
export interface AuditFilter {
  actor?: string;
  action?: AuditAction;
  outcome?: AuditOutcome;
  target?: { kind: AuditTargetKind; id?: string };
  from?: string;
  to?: string;
  /** Only rows with a smaller id (the page before). */
  beforeId?: number;
}
