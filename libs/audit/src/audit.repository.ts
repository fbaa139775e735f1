import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Selectable } from 'kysely';
import {
  AUDIT_ACTIONS,
  AUDIT_OUTCOMES,
  AUDIT_TARGET_KINDS,
  type AuditEntryDto,
  type AuditOutcome,
  type Role,
} from '#otter/contracts';
import { DB, runInTransaction, type AuditLogTable, type Db } from '#otter/db';
import type { AuditFilter, NewAuditEntry } from './audit-entry.js';

/** Rows one purge statement deletes at most: a long purge never holds one long lock. */
const PURGE_BATCH = 5_000;

/**
 * The only code that touches `audit_log` and `audit_purges`. Insert and list only: the table is append-only
 * (database triggers refuse UPDATE, and DELETE of any row newer than a recorded purge cutoff). Queries made
 * inside `transaction` join the caller's change (libs/db ambient transactions).
 */
@Injectable()
export class AuditRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  /** Runs `work` and every query in it, audit rows included, in one transaction. */
  transaction<T>(work: () => Promise<T>): Promise<T> {
    return runInTransaction(this.db, work);
  }

  async insert(entry: NewAuditEntry): Promise<void> {
    await this.db
      .insertInto('audit_log')
      .values({
        at: entry.at,
        actor_token_id: entry.actor?.tokenId ?? null,
        actor_name: entry.actor?.name ?? null,
        actor_role: entry.actor?.role ?? null,
        action: entry.action,
        target_kind: entry.target.kind,
        target_id: entry.target.id,
        request_id: entry.requestId,
        source: entry.source,
        outcome: entry.outcome,
        changes: JSON.stringify(entry.changes),
      })
      .execute();
  }

  /** Newest first, at most `limit` rows. */
  async list(filter: AuditFilter, limit: number): Promise<AuditEntryDto[]> {
    let query = this.db.selectFrom('audit_log').selectAll();
    if (filter.actor !== undefined) {
      const actor = filter.actor;
      query = query.where((eb) => eb.or([eb('actor_token_id', '=', actor), eb('actor_name', '=', actor)]));
    }
    if (filter.action !== undefined) query = query.where('action', '=', filter.action);
    if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
    if (filter.target !== undefined) {
      query = query.where('target_kind', '=', filter.target.kind);
      if (filter.target.id !== undefined) query = query.where('target_id', '=', filter.target.id);
    }
    if (filter.from !== undefined) query = query.where('at', '>=', filter.from);
    if (filter.to !== undefined) query = query.where('at', '<', filter.to);
    if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
    const rows = await query.orderBy('id', 'desc').limit(limit).execute();
    return rows.map(toDto);
  }

  /**
   * Deletes rows older than `before`, through the one path the triggers allow: the cutoff is first recorded
   * in `audit_purges` (append-only), in the same transaction. Returns how many rows went.
   */
  async purgeBefore(before: string, now: string): Promise<number> {
    return this.transaction(async () => {
      await this.db.insertInto('audit_purges').values({ id: randomUUID(), at: now, before }).execute();
      let deleted = 0;
      for (;;) {
        const batch = this.db
          .selectFrom('audit_log')
          .select('id')
          .where('at', '<', before)
          .orderBy('id')
          .limit(PURGE_BATCH);
        const result = await this.db.deleteFrom('audit_log').where('id', 'in', batch).executeTakeFirst();
        const n = Number(result.numDeletedRows);
        deleted += n;
        if (n < PURGE_BATCH) return deleted;
      }
    });
  }
}

function toDto(row: Selectable<AuditLogTable>): AuditEntryDto {
  return {
    id: Number(row.id),
    at: row.at,
    actor:
      row.actor_token_id !== null
        ? {
            tokenId: row.actor_token_id,
            name: row.actor_name ?? '',
            role: (row.actor_role ?? 'viewer') as Role,
          }
        : null,
    action: oneOf(AUDIT_ACTIONS, row.action, 'action'),
    target: { kind: oneOf(AUDIT_TARGET_KINDS, row.target_kind, 'target_kind'), id: row.target_id },
    requestId: row.request_id,
    source: row.source,
    outcome: oneOf<AuditOutcome>(AUDIT_OUTCOMES, row.outcome, 'outcome'),
    changes: JSON.parse(row.changes) as Record<string, unknown>,
  };
}

function oneOf<T extends string>(values: readonly T[], value: string, column: string): T {
  // A value this build cannot name (a newer version wrote it) fails loudly rather than being mislabelled.
  if (!(values as readonly string[]).includes(value)) {
    throw new Error(`audit_log row has an unknown ${column} "${value}"`);
  }
  return value as T;
}
