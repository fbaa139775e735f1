import type { TufConfig } from '#otter/config';
import {
  SPEC_VERSION,
  signMetadata,
  timestampOf,
  tufExpiry,
  type Ed25519Signer,
  type SnapshotSigned,
  type TargetFile,
  type TargetsSigned,
} from '#otter/tuf-signing';
import type { DirectorAssignment } from './director-assignment.js';
import type { NodeRole, RoleWrite, StoredSet } from './director-metadata.store.js';

/** What the director's single target says about the node it is for (the target's `custom`). */
export interface DirectorTargetCustom {
  nodeId: string;
  hardwareId: string;
  releaseVersion: string;
  /** The rollout that assigned the image, or null. */
  correlationId: string | null;
}

export type DirectorTtl = Pick<TufConfig, 'targetsTtl' | 'snapshotTtl' | 'timestampTtl'>;

export type RoleSigners = Record<NodeRole, Ed25519Signer[]>;

/**
 * A version that never goes backwards: one more than the stored one, or the current unix time if that is
 * larger. After a database restore (or the loss of these rows) the stored version is older than what nodes
 * trust, and the clock carries the new version past it.
 */
export function nextDirectorVersion(previous: number | undefined, nowMs: number): number {
  return Math.max((previous ?? 0) + 1, Math.floor(nowMs / 1000));
}

/** Signs a node's targets (its one image, or none), a snapshot of it and a timestamp of that snapshot. */
export function signNodeSet(
  assignment: DirectorAssignment,
  previous: StoredSet,
  signers: RoleSigners,
  ttl: DirectorTtl,
  nowMs: number,
): Record<NodeRole, RoleWrite> {
  const expires = (seconds: number): string => tufExpiry(nowMs + seconds * 1000);
  const targets: TargetsSigned = {
    _type: 'targets',
    spec_version: SPEC_VERSION,
    version: nextDirectorVersion(previous.targets?.version, nowMs),
    expires: expires(ttl.targetsTtl),
    targets: targetsOf(assignment),
  };
  const targetsWrite = signMetadata('targets', targets, signers.targets);
  const snapshot: SnapshotSigned = {
    _type: 'snapshot',
    spec_version: SPEC_VERSION,
    version: nextDirectorVersion(previous.snapshot?.version, nowMs),
    expires: expires(ttl.snapshotTtl),
    meta: { 'targets.json': { version: targets.version } },
  };
  const snapshotWrite = signMetadata('snapshot', snapshot, signers.snapshot);
  const timestamp = timestampOf(
    snapshotWrite,
    nextDirectorVersion(previous.timestamp?.version, nowMs),
    expires(ttl.timestampTtl),
  );
  return {
    targets: targetsWrite,
    snapshot: snapshotWrite,
    timestamp: signMetadata('timestamp', timestamp, signers.timestamp),
  };
}

function targetsOf(assignment: DirectorAssignment): Record<string, TargetFile> {
  const image = assignment.image;
  if (!image) return {};
  const custom: DirectorTargetCustom = {
    nodeId: assignment.nodeId,
    hardwareId: assignment.hardwareId,
    releaseVersion: image.version,
    correlationId: assignment.rolloutId,
  };
  return {
    [image.targetPath]: {
      length: image.length,
      hashes: { sha256: image.sha256 },
      custom: { ...custom },
    },
  };
}
