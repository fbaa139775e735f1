/** TUF 1.0 metadata as JSON, the exact shapes Otter signs and serves. */
export interface TufKey {
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyval: { public: string };
}

export interface TufSignature {
  keyid: string;
  sig: string;
}

export interface RoleKeys {
  keyids: string[];
  threshold: number;
}

export interface RootSigned {
  _type: 'root';
  spec_version: string;
  version: number;
  expires: string;
  consistent_snapshot: boolean;
  keys: Record<string, TufKey>;
  roles: Record<'root' | 'targets' | 'snapshot' | 'timestamp', RoleKeys>;
}

export interface TargetFile {
  length: number;
  hashes: { sha256: string };
  custom?: Record<string, unknown>;
}

export interface DelegatedRoleJson extends RoleKeys {
  name: string;
  terminating: boolean;
  paths: string[];
}

export interface SuccinctRolesJson extends RoleKeys {
  bit_length: number;
  name_prefix: string;
}

export interface TargetsSigned {
  _type: 'targets';
  spec_version: string;
  version: number;
  expires: string;
  targets: Record<string, TargetFile>;
  delegations?: {
    keys: Record<string, TufKey>;
    roles?: DelegatedRoleJson[];
    succinct_roles?: SuccinctRolesJson;
  };
}

export interface SnapshotSigned {
  _type: 'snapshot';
  spec_version: string;
  version: number;
  expires: string;
  meta: Record<string, { version: number }>;
}

export interface TimestampSigned {
  _type: 'timestamp';
  spec_version: string;
  version: number;
  expires: string;
  meta: { 'snapshot.json': { version: number; length: number; hashes: { sha256: string } } };
}

export type AnySigned = RootSigned | TargetsSigned | SnapshotSigned | TimestampSigned;

export interface SignedEnvelope<T extends AnySigned = AnySigned> {
  signatures: TufSignature[];
  signed: T;
}

export const SPEC_VERSION = '1.0.31';
export const ONLINE_ROLES = ['targets', 'snapshot', 'timestamp'] as const;
export type OnlineRole = (typeof ONLINE_ROLES)[number];

/** Metadata as received from outside (a ceremony upload): nothing about `signed` is trusted yet. */
export interface UntrustedEnvelope {
  signatures: TufSignature[];
  signed: Record<string, unknown>;
}
