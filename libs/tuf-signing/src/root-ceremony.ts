import { isEd25519TufKey, keyIdOf, type Ed25519Signer, verifySignature } from './ed25519.js';
import {
  SPEC_VERSION,
  type RootSigned,
  type SignedEnvelope,
  type TufKey,
  type UntrustedEnvelope,
} from './tuf-types.js';

export interface RootDraftInput {
  /** The root this one replaces (rotation), or undefined for version 1. */
  previous?: RootSigned;
  rootKeys: TufKey[];
  rootThreshold: number;
  onlineKeys: Record<'targets' | 'snapshot' | 'timestamp', TufKey[]>;
  expires: string;
}

/** Builds an unsigned root: the first step of the offline ceremony. */
export function createRootDraft(input: RootDraftInput): SignedEnvelope<RootSigned> {
  const keys: Record<string, TufKey> = {};
  const ids = (list: TufKey[]): string[] =>
    list.map((k) => {
      const id = keyIdOf(k);
      keys[id] = k;
      return id;
    });
  const signed: RootSigned = {
    _type: 'root',
    spec_version: SPEC_VERSION,
    version: (input.previous?.version ?? 0) + 1,
    expires: input.expires,
    consistent_snapshot: true,
    keys,
    roles: {
      root: { keyids: ids(input.rootKeys), threshold: input.rootThreshold },
      targets: { keyids: ids(input.onlineKeys.targets), threshold: 1 },
      snapshot: { keyids: ids(input.onlineKeys.snapshot), threshold: 1 },
      timestamp: { keyids: ids(input.onlineKeys.timestamp), threshold: 1 },
    },
  };
  return { signatures: [], signed };
}

/** Adds (or replaces) one key holder's signature. */
export function signRoot(
  envelope: SignedEnvelope<RootSigned>,
  signer: Ed25519Signer,
): SignedEnvelope<RootSigned> {
  return {
    signed: envelope.signed,
    signatures: [
      ...envelope.signatures.filter((s) => s.keyid !== signer.keyId),
      signer.sign(envelope.signed),
    ],
  };
}

export interface RoleSignatureStatus {
  threshold: number;
  /** Key ids of `role` that made a valid signature, in the order the role lists them. */
  signedBy: string[];
  /** Key ids of `role` with no valid signature yet. */
  missing: string[];
}

/** Which keys of `role` in `root` made a valid signature over `envelope.signed`, and which have not. */
export function roleSignatureStatus(
  root: RootSigned,
  role: keyof RootSigned['roles'],
  envelope: SignedEnvelope | UntrustedEnvelope,
): RoleSignatureStatus {
  const allowed = new Set(root.roles[role].keyids);
  const valid = new Set<string>();
  for (const sig of envelope.signatures) {
    const key = root.keys[sig.keyid];
    if (!allowed.has(sig.keyid) || !key || valid.has(sig.keyid)) continue;
    if (verifySignature(key, envelope.signed, sig)) valid.add(sig.keyid);
  }
  return {
    threshold: root.roles[role].threshold,
    signedBy: root.roles[role].keyids.filter((id) => valid.has(id)),
    missing: root.roles[role].keyids.filter((id) => !valid.has(id)),
  };
}

/** Key ids are shown by their first 16 hex digits, as `otter tuf` prints them. */
function missingList(status: RoleSignatureStatus): string {
  return status.missing.map((id) => id.slice(0, 16)).join(', ');
}

/**
 * Checks a candidate root the way a TUF client will, before Otter serves it: well formed, the next version,
 * not expired, and signed by a threshold of both the trusted root's root keys and its own.
 * Returns the list of problems (empty when acceptable).
 */
export function checkRootTransition(
  trusted: RootSigned | undefined,
  candidate: SignedEnvelope | UntrustedEnvelope,
  now = Date.now(),
): string[] {
  const problems: string[] = [];
  const c = candidate.signed as Partial<RootSigned>;
  if (c._type !== 'root') return ['signed._type must be "root"'];
  if (typeof c.spec_version !== 'string' || !c.spec_version.startsWith('1.'))
    problems.push('spec_version must be 1.x');
  const expectedVersion = (trusted?.version ?? 0) + 1;
  if (c.version !== expectedVersion)
    problems.push(`version must be ${expectedVersion}, got ${String(c.version)}`);
  if (c.consistent_snapshot !== true) problems.push('consistent_snapshot must be true');
  if (typeof c.expires !== 'string' || !(Date.parse(c.expires) > now))
    problems.push('expires must be a future time');
  if (!c.keys || typeof c.keys !== 'object' || !c.roles || typeof c.roles !== 'object') {
    return [...problems, 'keys and roles are required'];
  }
  for (const [id, key] of Object.entries(c.keys)) {
    if (!isEd25519TufKey(key)) {
      problems.push(`key ${id.slice(0, 12)} is not an ed25519 key`);
    } else if (keyIdOf(key) !== id) {
      problems.push(`key id ${id.slice(0, 12)} does not match its key`);
    }
  }
  for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
    const r = c.roles[role];
    if (!r || !Array.isArray(r.keyids) || !Number.isInteger(r.threshold) || r.threshold < 1) {
      problems.push(`role ${role} needs keyids and a threshold >= 1`);
      continue;
    }
    if (new Set(r.keyids).size !== r.keyids.length) problems.push(`role ${role} lists a key twice`);
    // Own keys only: `toString` is no key id, though every object answers to it.
    if (r.keyids.some((id) => !Object.hasOwn(c.keys!, id)))
      problems.push(`role ${role} names a key that is not in keys`);
    if (r.threshold > r.keyids.length)
      problems.push(`role ${role} threshold ${r.threshold} exceeds its ${r.keyids.length} keys`);
  }
  if (problems.length > 0) return problems;
  const root = c as RootSigned;
  // The messages name the keys still to sign, so a ceremony knows whom to call.
  const own = roleSignatureStatus(root, 'root', candidate);
  if (own.signedBy.length < own.threshold) {
    problems.push(
      `signed by ${own.signedBy.length} of its own root keys, needs ${own.threshold}; not signed by ${missingList(own)}`,
    );
  }
  if (trusted) {
    const old = roleSignatureStatus(trusted, 'root', candidate);
    if (old.signedBy.length < old.threshold) {
      problems.push(
        `signed by ${old.signedBy.length} of the current root keys, needs ${old.threshold}; not signed by ${missingList(old)}`,
      );
    }
  }
  return problems;
}
