import { describe, expect, it } from 'vitest';
import { nearingExpiry, ROOT_WARNING_SECONDS, warningSeconds } from './expiry-warning.js';

const TTL = { targetsTtl: 90 * 86_400, snapshotTtl: 7 * 86_400, timestampTtl: 86_400 };
const NOW = Date.parse('2031-01-01T00:00:00.000Z');
const head = (secondsLeft: number, version = 3) => ({
  version,
  expiresAt: new Date(NOW + secondsLeft * 1000).toISOString(),
});

describe('roles nearing expiry', () => {
  it('warns of the root 30 days ahead, and of each online role a quarter of its lifetime ahead', () => {
    expect(warningSeconds('root', TTL)).toBe(ROOT_WARNING_SECONDS);
    expect(warningSeconds('timestamp', TTL)).toBe(21_600);
    expect(warningSeconds('snapshot', TTL)).toBe(7 * 21_600);
    // The top-level targets and a delegated hashed bin alike.
    expect(warningSeconds('targets', TTL)).toBe(90 * 21_600);
    expect(warningSeconds('bins-3f', TTL)).toBe(90 * 21_600);
  });

  it('lists the heads inside their warning or past their expiry, and no other', () => {
    const heads = new Map([
      ['root', head(29 * 86_400)],
      ['targets', head(30 * 86_400)],
      ['bins-00', head(-60)],
      ['snapshot', head(6 * 86_400)],
      ['timestamp', head(21_599, 812)],
    ]);
    expect(nearingExpiry(heads, TTL, NOW)).toEqual([
      { role: 'root', version: 3, expires: heads.get('root')!.expiresAt, secondsLeft: 29 * 86_400 },
      { role: 'bins-00', version: 3, expires: heads.get('bins-00')!.expiresAt, secondsLeft: -60 },
      { role: 'timestamp', version: 812, expires: heads.get('timestamp')!.expiresAt, secondsLeft: 21_599 },
    ]);
  });
});
