import type { TufConfig } from '#otter/config';

/** A role whose newest version expires soon enough that an operator must hear of it. */
export interface ExpiringRole {
  role: string;
  version: number;
  expires: string;
  secondsLeft: number;
}

/** Roots are re-signed only by the offline ceremony, which takes people and keys: announced this far ahead. */
export const ROOT_WARNING_SECONDS = 30 * 86_400;

/**
 * How long before its expiry a role is announced as nearing it. The scheduler re-signs an online role
 * (targets, each hashed bin, snapshot, timestamp) once less than half its lifetime is left; one with less
 * than a quarter left has missed re-signing for a quarter of its lifetime (a job that keeps failing, a key
 * the process cannot read), and clients refuse it when it runs out.
 */
export function warningSeconds(
  role: string,
  ttl: Pick<TufConfig, 'targetsTtl' | 'snapshotTtl' | 'timestampTtl'>,
): number {
  if (role === 'root') return ROOT_WARNING_SECONDS;
  if (role === 'snapshot') return ttl.snapshotTtl / 4;
  if (role === 'timestamp') return ttl.timestampTtl / 4;
  // The top-level targets and every delegated (hashed bin) targets role.
  return ttl.targetsTtl / 4;
}

/** The heads (newest version of each role) that are within their warning of expiry, or past it. */
export function nearingExpiry(
  heads: ReadonlyMap<string, { version: number; expiresAt: string }>,
  ttl: Pick<TufConfig, 'targetsTtl' | 'snapshotTtl' | 'timestampTtl'>,
  now: number,
): ExpiringRole[] {
  const found: ExpiringRole[] = [];
  for (const [role, head] of heads) {
    const secondsLeft = Math.floor((Date.parse(head.expiresAt) - now) / 1000);
    if (secondsLeft < warningSeconds(role, ttl))
      found.push({ role, version: head.version, expires: head.expiresAt, secondsLeft });
  }
  return found;
}
