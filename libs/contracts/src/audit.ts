import { z } from 'zod';
import { EXAMPLE } from './example-values.js';
import { ROLES } from './auth.js';

/**
 * Every action the audit log records, defined once: the api declares one per state-changing management route
 * (`@Audited`), the CLI and the dashboard filter by them. `api.read` is only ever the action of a refused
 * (401/403) attempt at a read-only route: successful reads are not audited.
 */
export const AUDIT_ACTIONS = [
  'token.created',
  'token.revoked',
  'tuf.root.published',
  'tuf.key.rotated',
  'director.root.published',
  'director.key.rotated',
  'director.metadata.invalidated',
  'release.pushed',
  'delta.requested',
  'rollout.created',
  'rollout.started',
  'rollout.paused',
  'rollout.resumed',
  'rollout.aborted',
  'rollout.node.excluded',
  'node.approved',
  'node.rejected',
  'node.revoked',
  'node.repinned',
  'node.labels.set',
  'node.reenroll.opened',
  'enrollment.allowlist.added',
  'events.ticket.issued',
  'audit.purged',
  'api.read',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** How the attempt ended. `failed`: authenticated and authorised, but the change was refused or broke (rolled back). */
export const AUDIT_OUTCOMES = ['ok', 'refused-401', 'refused-403', 'failed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** What an action is about. `route` names the method and path of a refused attempt whose target is unknown. */
export const AUDIT_TARGET_KINDS = [
  'token',
  'tuf-root',
  'tuf-key',
  'director',
  'release',
  'delta',
  'rollout',
  'node',
  'allowlist',
  'audit',
  'route',
] as const;
export type AuditTargetKind = (typeof AUDIT_TARGET_KINDS)[number];

export const auditEntryDto = z.object({
  /** Monotonic: the cursor of `GET /api/v1/audit` pages through it, newest first. */
  id: z.number().int(),
  at: z.string(),
  actor: z
    .object({ tokenId: z.string(), name: z.string(), role: z.enum(ROLES) })
    .nullable()
    .describe('null when the caller presented no valid token (refused-401)'),
  action: z.enum(AUDIT_ACTIONS),
  target: z.object({ kind: z.enum(AUDIT_TARGET_KINDS), id: z.string().nullable() }),
  requestId: z.string().nullable(),
  source: z.string().nullable(),
  outcome: z.enum(AUDIT_OUTCOMES),
  /** A compact summary of what changed (or, for `failed`, the error code; for refused rows, how many were coalesced). */
  changes: z.record(z.string(), z.unknown()),
});
export type AuditEntryDto = z.infer<typeof auditEntryDto>;

export const auditListDto = z
  .object({
    entries: z.array(auditEntryDto),
    /** Pass as `cursor` for the next (older) page; null on the last page. */
    nextCursor: z.string().nullable(),
  })
  .meta({
    example: {
      entries: [
        {
          id: 4812,
          at: EXAMPLE.at,
          actor: { tokenId: EXAMPLE.tokenId, name: 'ci', role: 'release-engineer' },
          action: 'rollout.paused',
          target: { kind: 'rollout', id: EXAMPLE.rolloutId },
          requestId: 'req-7f3a9c',
          source: '203.0.113.7',
          outcome: 'ok',
          changes: { state: 'paused', stateReason: 'error rate on canaries' },
        },
      ],
      nextCursor: '4812',
    },
  });
export type AuditListDto = z.infer<typeof auditListDto>;

export const AUDIT_PAGE_MAX = 500;
export const AUDIT_PAGE_DEFAULT = 100;

const isoTime = z.iso.datetime({ offset: true });

/**
 * `GET /api/v1/audit` query. `actor` matches a token id or name; `target` is `kind` or `kind:id`; `from` and
 * `to` are ISO 8601 times (from inclusive, to exclusive); `cursor` is an opaque value from `nextCursor`.
 */
export const auditQuery = z.strictObject({
  actor: z.string().min(1).max(200).optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  outcome: z.enum(AUDIT_OUTCOMES).optional(),
  target: z
    .string()
    .regex(new RegExp(`^(${AUDIT_TARGET_KINDS.join('|')})(:[^\\s]{1,200})?$`), 'must be KIND or KIND:ID')
    .optional(),
  from: isoTime.optional(),
  to: isoTime.optional(),
  cursor: z
    .string()
    .regex(/^[1-9][0-9]{0,15}$/, 'not a cursor from this API')
    .optional(),
  limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).optional(),
});
export type AuditQuery = z.infer<typeof auditQuery>;
