import type { RootSigned, SignedEnvelope, SnapshotSigned, TimestampSigned } from '#otter/tuf-signing';
import type { DirectorAssignment } from './director-assignment.js';
import { NODE_ROLES, type NodeRole, type StoredSet } from './director-metadata.store.js';
import type { DirectorTtl } from './director-signing.js';

const TTL_OF: Record<NodeRole, keyof DirectorTtl> = {
  targets: 'targetsTtl',
  snapshot: 'snapshotTtl',
  timestamp: 'timestampTtl',
};

/**
 * Why a node's stored metadata must be signed again before it is served, or undefined when it can be served
 * as it is: none yet, made from an older assignment, signed by keys the current root no longer names (a
 * rotation), an inconsistent set (rows lost or restored), or a role within half its lifetime of expiry.
 */
export function staleReason(
  set: StoredSet,
  assignment: DirectorAssignment,
  root: RootSigned,
  ttl: DirectorTtl,
  nowMs: number,
): string | undefined {
  if (assignment.metadataGeneration !== assignment.generation) return 'assignment changed';
  const parsed: Partial<Record<NodeRole, SignedEnvelope>> = {};
  for (const role of NODE_ROLES) {
    const stored = set[role];
    if (!stored) return `no ${role} metadata`;
    const envelope = JSON.parse(stored.body) as SignedEnvelope;
    const listed = new Set(root.roles[role].keyids);
    const signedBy = new Set(envelope.signatures.map((s) => s.keyid).filter((id) => listed.has(id)));
    if (signedBy.size < root.roles[role].threshold) return `${role} is not signed by the keys the root names`;
    parsed[role] = envelope;
  }
  const timestamp = parsed.timestamp!.signed as TimestampSigned;
  const snapshot = parsed.snapshot!.signed as SnapshotSigned;
  if (timestamp.meta['snapshot.json'].version !== set.snapshot!.version)
    return 'timestamp names another snapshot';
  if (snapshot.meta['targets.json']?.version !== set.targets!.version) return 'snapshot names other targets';
  if (nowMs >= freshUntil(set, ttl)) return 'expiry is near';
  return undefined;
}

/** When the first of the node's roles comes within half its lifetime of expiry and must be re-signed. */
export function freshUntil(set: StoredSet, ttl: DirectorTtl): number {
  let until = Number.POSITIVE_INFINITY;
  for (const role of NODE_ROLES) {
    const stored = set[role];
    if (!stored) return 0;
    until = Math.min(until, Date.parse(stored.expiresAt) - (ttl[TTL_OF[role]] * 1000) / 2);
  }
  return until;
}
