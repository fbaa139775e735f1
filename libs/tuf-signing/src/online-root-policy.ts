import type { Ed25519Signer } from './ed25519.js';
import type { OnlineKeyInfo } from './online-key-store.js';
import { ONLINE_ROLES, type OnlineRole, type RootSigned, type TufKey } from './tuf-types.js';

/**
 * What a server that signs with online keys must check before it serves a root, beyond what a client checks
 * (root-ceremony.ts): it holds the private key of every online key the root names, and no online key is a
 * root key. Shared by every repository Otter runs (image, director).
 */
export function onlineRootProblems(root: RootSigned, heldKeyIds: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const role of ONLINE_ROLES) {
    const listed = root.roles[role].keyids;
    if (!listed.some((id) => heldKeyIds.has(id))) {
      problems.push(`Otter holds no private key for the ${role} role it names`);
    }
    // A key this repository does not hold (another repository's online key, say) would let whoever holds
    // it sign for this repository's role.
    for (const id of listed.filter((k) => !heldKeyIds.has(k))) {
      problems.push(`the ${role} role names key ${id.slice(0, 16)}…, which this repository does not hold`);
    }
  }
  if (root.roles.root.keyids.some((id) => heldKeyIds.has(id))) {
    problems.push('an online key must never be a root key');
  }
  return problems;
}

/** The newest key held for each online role: what the next root should list. */
export function newestOnlineKeys(
  keys: ReadonlyArray<{ signer: Ed25519Signer; info: OnlineKeyInfo }>,
): Record<OnlineRole, TufKey[]> | { missing: OnlineRole } {
  const picked: Partial<Record<OnlineRole, TufKey[]>> = {};
  for (const role of ONLINE_ROLES) {
    const newest = keys
      .filter((k) => k.info.role === role)
      .sort((a, b) => a.info.createdAt.localeCompare(b.info.createdAt))
      .at(-1);
    if (!newest) return { missing: role };
    picked[role] = [newest.signer.tufKey];
  }
  return picked as Record<OnlineRole, TufKey[]>;
}

/**
 * After a rotation, the online keys to keep: those the new root lists, and those created after the newest
 * listed key of their role (pending a later rotation). The others were replaced and can be destroyed.
 */
export function retainedOnlineKeyIds(root: RootSigned, keys: readonly OnlineKeyInfo[]): Set<string> {
  const keep = new Set<string>();
  for (const role of ONLINE_ROLES) {
    const listed = root.roles[role].keyids;
    const newestListed =
      keys
        .filter((k) => k.role === role && listed.includes(k.keyId))
        .map((k) => k.createdAt)
        .sort()
        .at(-1) ?? '';
    for (const k of keys.filter((x) => x.role === role)) {
      if (listed.includes(k.keyId) || k.createdAt > newestListed) keep.add(k.keyId);
    }
  }
  return keep;
}
