import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Whether a scrape may read the metrics: always when no OTTER_METRICS_TOKEN is set, else only with
 * `Authorization: Bearer <token>` (compared in constant time: the fleet's composition is worth guessing).
 */
export function scrapeAllowed(authorization: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const match = /^Bearer ([^\s]+)$/i.exec(authorization ?? '');
  if (!match) return false;
  return timingSafeEqual(digest(match[1]), digest(token));
}

/** Hashing first gives both sides one length, so the comparison leaks nothing about the token's. */
function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
