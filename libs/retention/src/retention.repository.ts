import { Inject, Injectable } from '@nestjs/common';
import { DB, type Db } from '#otter/db';

/** The tables devices write to, one row per event, that carry a node_id and a created_at. */
export type NodeHistoryTable = 'device_reports' | 'attestation_verdicts' | 'downloads';

/** Rows one purge statement deletes at most: long purges never hold one long lock. */
const BATCH = 5_000;

/**
 * The only place that deletes what devices wrote, because it is too old or too much. Age purges keep what
 * the rollout logic still reads: each node's latest verdict (the admission gate), and the verdicts and
 * reports of nodes in an unfinished rollout (the proof of success is a passing verdict after admission).
 */
@Injectable()
export class RetentionRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  /**
   * Once the node has `keep + slack` rows or more, deletes those older than its `keep`th newest, so it never
   * holds more than `keep + slack - 1` (plus rows written in the same millisecond as the boundary). Below that
   * it costs one read walking at most `keep + slack` entries of (node_id, created_at), and no write: the slack
   * turns a delete per insert into one per `slack` inserts.
   */
  async keepNewest(table: NodeHistoryTable, nodeId: string, keep: number, slack = 1): Promise<number> {
    // Each of the tables has node_id and created_at; Kysely cannot type one query over a union of tables.
    const t = table as 'device_reports';
    const newest = (offset: number) =>
      this.db
        .selectFrom(t)
        .select('created_at')
        .where('node_id', '=', nodeId)
        .orderBy('created_at', 'desc')
        .limit(1)
        .offset(offset);
    if (!(await newest(keep + slack - 1).executeTakeFirst())) return 0;
    const result = await this.db
      .deleteFrom(t)
      .where('node_id', '=', nodeId)
      .where('created_at', '<', newest(keep - 1))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Device reports written before `before`, except those of nodes in an unfinished rollout. */
  purgeReports(before: string): Promise<number> {
    return this.inBatches(async () => {
      const result = await this.db
        .deleteFrom('device_reports')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('device_reports as r')
            .select('r.id')
            .where('r.created_at', '<', before)
            .where(({ not, exists, selectFrom }) =>
              not(
                exists(
                  selectFrom('rollout_memberships as m')
                    .select('m.node_id')
                    .whereRef('m.node_id', '=', 'r.node_id'),
                ),
              ),
            )
            .limit(BATCH),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }

  /**
   * Verdicts written before `before`, except each node's latest (a newer one must exist) and those of nodes in
   * an unfinished rollout.
   */
  purgeVerdicts(before: string): Promise<number> {
    return this.inBatches(async () => {
      const result = await this.db
        .deleteFrom('attestation_verdicts')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('attestation_verdicts as v')
            .select('v.id')
            .where('v.created_at', '<', before)
            .where(({ exists, selectFrom }) =>
              exists(
                selectFrom('attestation_verdicts as newer')
                  .select('newer.id')
                  .whereRef('newer.node_id', '=', 'v.node_id')
                  .whereRef('newer.created_at', '>', 'v.created_at'),
              ),
            )
            .where(({ not, exists, selectFrom }) =>
              not(
                exists(
                  selectFrom('rollout_memberships as m')
                    .select('m.node_id')
                    .whereRef('m.node_id', '=', 'v.node_id'),
                ),
              ),
            )
            .limit(BATCH),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }

  /** Download records written before `before` (the bytes-saved totals then cover what is left). */
  purgeDownloads(before: string): Promise<number> {
    return this.inBatches(async () => {
      const result = await this.db
        .deleteFrom('downloads')
        .where('id', 'in', (eb) =>
          eb.selectFrom('downloads').select('id').where('created_at', '<', before).limit(BATCH),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }

  /** Enrollments, in whatever state, that expired before `before`: none of them can be activated any more. */
  purgeEnrollments(before: string): Promise<number> {
    return this.inBatches(async () => {
      const result = await this.db
        .deleteFrom('enrollments')
        .where('id', 'in', (eb) =>
          eb.selectFrom('enrollments').select('id').where('expires_at', '<', before).limit(BATCH),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }

  private async inBatches(purgeBatch: () => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await purgeBatch();
      total += deleted;
      if (deleted < BATCH) return total;
    }
  }
}
