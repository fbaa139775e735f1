import { Inject, Injectable } from '@nestjs/common';
import type { AttestationStatus, NodeIdentityState } from '#otter/contracts';
import { DB, type Db } from '#otter/db';
import { hasAttestationStatus } from './attestation-status.js';
import { toRecord, type NodeRecord } from './node.repository.js';

/** Where a page starts: just after this node in (createdAt, id) order. */
export interface NodePagePosition {
  createdAt: string;
  id: string;
}

/** What a page of nodes is narrowed by; every field present narrows (AND). Times are ISO-8601. */
export interface NodePageFilter {
  hardwareId?: string;
  state?: NodeIdentityState;
  runningVersion?: string;
  labels?: Array<{ key: string; value: string }>;
  attestation?: { status: AttestationStatus; freshSince: string };
  seenSince?: string;
  notSeenSince?: string;
  idPrefix?: string;
}

/**
 * Pages of nodes in (created_at, id) order, which never changes for a node, so a cursor stays valid while
 * nodes come and go. Each equality filter has an index leading with its column and ending with that order
 * (migration 0009_node_inventory), so a filtered page is a range scan of one index, not a sort.
 */
@Injectable()
export class NodeListRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  async page(
    filter: NodePageFilter,
    after: NodePagePosition | undefined,
    limit: number,
  ): Promise<{ nodes: NodeRecord[]; next: NodePagePosition | null }> {
    // With a label filter the page is driven by the first label's rows: (key, value, node_created_at, node_id)
    // is an index in page order, so a rare label costs a range scan rather than a probe per node. Without one,
    // by the nodes' own (created_at, id) order.
    const [first, ...otherLabels] = filter.labels ?? [];
    let q = first
      ? this.db
          .selectFrom('node_labels as l')
          .innerJoin('nodes', 'nodes.id', 'l.node_id')
          .selectAll('nodes')
          .where('l.key', '=', first.key)
          .where('l.value', '=', first.value)
      : this.db.selectFrom('nodes').selectAll('nodes');
    const [byTime, byId] = first
      ? (['l.node_created_at', 'l.node_id'] as const)
      : (['nodes.created_at', 'nodes.id'] as const);
    if (filter.hardwareId !== undefined) q = q.where('hardware_id', '=', filter.hardwareId);
    if (filter.state !== undefined) q = q.where('state', '=', filter.state);
    if (filter.runningVersion !== undefined) q = q.where('running_version', '=', filter.runningVersion);
    for (const label of otherLabels) {
      q = q.where((eb) =>
        eb.exists(
          eb
            .selectFrom('node_labels as other')
            .select('other.node_id')
            .whereRef('other.node_id', '=', 'nodes.id')
            .where('other.key', '=', label.key)
            .where('other.value', '=', label.value),
        ),
      );
    }
    if (filter.attestation) {
      const { status, freshSince } = filter.attestation;
      q = q.where((eb) => hasAttestationStatus(eb, status, freshSince));
    }
    if (filter.seenSince !== undefined) q = q.where('last_seen_at', '>=', filter.seenSince);
    if (filter.notSeenSince !== undefined) {
      const since = filter.notSeenSince;
      q = q.where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', since)]));
    }
    if (filter.idPrefix !== undefined) {
      // A range on the primary key: ids are lowercase hex and dashes, all of which sort before 'g'.
      q = q.where('nodes.id', '>=', filter.idPrefix).where('nodes.id', '<', `${filter.idPrefix}g`);
    }
    if (after) {
      q = q.where((eb) => eb(eb.refTuple(byTime, byId), '>', eb.tuple(after.createdAt, after.id)));
    }
    const rows = await q
      .orderBy(byTime)
      .orderBy(byId)
      .limit(limit + 1)
      .execute();
    const nodes = rows.slice(0, limit).map(toRecord);
    const last = nodes.at(-1);
    return {
      nodes,
      next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null,
    };
  }
}
