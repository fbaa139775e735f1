import { Inject, Injectable, Logger } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import {
  AUDIT_PAGE_DEFAULT,
  type AuditAction,
  type AuditListDto,
  type AuditOutcome,
  type AuditQuery,
  type AuditTargetKind,
} from '#otter/contracts';
import { currentAuditContext } from './audit-context.js';
import type { AuditActor, AuditTarget } from './audit-entry.js';
import { AuditRepository } from './audit.repository.js';
import { RefusalCoalescer } from './refusal-coalescer.js';

/** Refused rows per outcome, action and source: at most one a minute, and at most this many keys a minute. */
export const REFUSAL_WINDOW_MS = 60_000;
export const REFUSAL_MAX_SOURCES = 1_000;

/** What a change recorded: its action, its target, and a compact summary. */
export interface AuditChange {
  action: AuditAction;
  target: AuditTarget;
  changes?: Record<string, unknown>;
}

/** Writes and reads the audit log (docs/audit.md). */
@Injectable()
export class AuditService {
  private readonly logger = new Logger(AuditService.name);
  private readonly refusals = new RefusalCoalescer(REFUSAL_WINDOW_MS, REFUSAL_MAX_SOURCES);

  constructor(
    private readonly audit: AuditRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  /**
   * Runs `work` and writes the current request's `ok` row in the same transaction: both commit, or neither.
   * Outside a management request (no context) it only runs `work`.
   */
  async commitWith<T>(work: () => Promise<T>, describe: (result: T) => AuditChange): Promise<T> {
    const context = currentAuditContext();
    if (!context) return work();
    return this.audit.transaction(async () => {
      const result = await work();
      await this.write('ok', describe(result));
      context.recorded = true;
      return result;
    });
  }

  /** A change that was refused or broke: written outside its (rolled back) transaction. */
  async recordFailure(change: AuditChange, code: string): Promise<void> {
    await this.write('failed', { ...change, changes: { ...change.changes, error: code } });
  }

  /**
   * A 401 or 403 on a management route. Coalesced per outcome, action and source (see RefusalCoalescer): a
   * flood costs at most one row per such key a minute, and at most REFUSAL_MAX_SOURCES keys a minute. Never
   * throws: the refusal itself must still be answered.
   */
  async recordRefusal(
    outcome: Extract<AuditOutcome, 'refused-401' | 'refused-403'>,
    attempt: {
      action: AuditAction;
      target: AuditTarget;
      actor: AuditActor | null;
      requestId: string | null;
      source: string | null;
    },
    now = Date.now(),
  ): Promise<void> {
    const admitted = this.refusals.admit(`${outcome} ${attempt.action} ${attempt.source ?? ''}`, now);
    if (!admitted) return;
    try {
      await this.audit.insert({
        at: new Date(now).toISOString(),
        actor: attempt.actor,
        action: attempt.action,
        target: attempt.target,
        requestId: attempt.requestId,
        source: attempt.source,
        outcome,
        changes: admitted.coalesced > 0 ? { coalesced: admitted.coalesced } : {},
      });
    } catch (error) {
      this.logger.error(
        { err: error, outcome, source: attempt.source },
        'could not write a refused audit row',
      );
    }
  }

  async list(query: AuditQuery): Promise<AuditListDto> {
    const limit = query.limit ?? AUDIT_PAGE_DEFAULT;
    const [kind, ...id] = query.target?.split(':') ?? [];
    const entries = await this.audit.list(
      {
        actor: query.actor,
        action: query.action,
        outcome: query.outcome,
        target: kind
          ? { kind: kind as AuditTargetKind, id: id.length ? id.join(':') : undefined }
          : undefined,
        from: query.from && new Date(query.from).toISOString(),
        to: query.to && new Date(query.to).toISOString(),
        beforeId: query.cursor === undefined ? undefined : Number(query.cursor),
      },
      limit + 1,
    );
    const page = entries.slice(0, limit);
    return {
      entries: page,
      nextCursor: entries.length > limit ? String(page[page.length - 1]!.id) : null,
    };
  }

  /** The retention purge (OTTER_AUDIT_RETENTION_DAYS); 0 when retention is off. */
  async purge(now: Date = new Date()): Promise<number> {
    const days = this.config.retention.auditMaxAgeDays;
    if (days === null) return 0;
    const before = new Date(now.getTime() - days * 86_400_000).toISOString();
    return this.audit.transaction(async () => {
      const deleted = await this.audit.purgeBefore(before, now.toISOString());
      // The purge is itself on the record, in its transaction; its row is newer than any cutoff.
      if (deleted > 0) {
        await this.audit.insert({
          at: now.toISOString(),
          actor: null,
          action: 'audit.purged',
          target: { kind: 'audit', id: null },
          requestId: null,
          source: null,
          outcome: 'ok',
          changes: { before, deleted, retentionDays: days },
        });
      }
      return deleted;
    });
  }

  private async write(outcome: AuditOutcome, change: AuditChange): Promise<void> {
    const context = currentAuditContext();
    await this.audit.insert({
      at: new Date().toISOString(),
      actor: context?.actor ?? null,
      action: change.action,
      target: change.target,
      requestId: context?.requestId ?? null,
      source: context?.source ?? null,
      outcome,
      changes: change.changes ?? {},
    });
  }
}
