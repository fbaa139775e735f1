import type { Expression, ExpressionBuilder, SqlBool } from 'kysely';
import type { AttestationStatus } from '#otter/contracts';
import type { Database } from '#otter/db';

/**
 * The one definition of a node's attestation status (ATTESTATION_STATUSES), from its last verdict kept on its
 * row (nodes.last_verdict_*) and one freshness (OTTER_ATTESTATION_FRESHNESS). The node detail judges one
 * record with attestationStatus(); the node list filter and the otter_nodes gauge judge rows in SQL with
 * hasAttestationStatus(). The two are the same rules, written twice only because one runs in the database;
 * attestation-status.spec.ts holds them to each other.
 */

/** A node's last verdict as its row keeps it (null: it never attested). */
export interface LastVerdict {
  passed: boolean;
  at: string;
}

/** The oldest verdict time that still counts as fresh: `freshnessSeconds` before `now`, ISO-8601. */
export function freshSince(freshnessSeconds: number, now: number): string {
  return new Date(now - freshnessSeconds * 1000).toISOString();
}

export function attestationStatus(
  last: LastVerdict | null,
  freshnessSeconds: number,
  now: number,
): AttestationStatus {
  if (!last) return 'never';
  // A failure stays until the node attests clean, however old: an operator must not see it age into `stale`.
  if (!last.passed) return 'failed';
  return last.at >= freshSince(freshnessSeconds, now) ? 'passed' : 'stale';
}

/**
 * Rows of `nodes` whose status is `status`, with `fresh` = freshSince(...). Each status is a condition on the
 * leading columns of an index: (last_verdict_passed, ...) for the list filter, and the tail of nodes_fleet
 * for the fleet counts (migration 0010_metrics_scale).
 */
export function hasAttestationStatus(
  eb: ExpressionBuilder<Database, 'nodes'>,
  status: AttestationStatus,
  fresh: string,
): Expression<SqlBool> {
  switch (status) {
    case 'never':
      return eb('nodes.last_verdict_passed', 'is', null);
    case 'failed':
      return eb('nodes.last_verdict_passed', '=', 0);
    case 'passed':
      return eb.and([eb('nodes.last_verdict_passed', '=', 1), eb('nodes.last_verdict_at', '>=', fresh)]);
    case 'stale':
      return eb.and([eb('nodes.last_verdict_passed', '=', 1), eb('nodes.last_verdict_at', '<', fresh)]);
  }
}
