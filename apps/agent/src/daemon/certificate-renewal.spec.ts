import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DeviceCertificateInfo } from '../device/device-certificate.js';
import { RENEW_AT, RENEW_JITTER, renewalTime, retryDelayMs } from './certificate-renewal.js';

const DAY = 86_400_000;
const cert = (lifetimeMs: number, serialNumber = randomBytes(16).toString('hex')): DeviceCertificateInfo => ({
  serialNumber,
  notBefore: new Date(1_700_000_000_000),
  notAfter: new Date(1_700_000_000_000 + lifetimeMs),
});
const fraction = (c: DeviceCertificateInfo): number =>
  (renewalTime(c).getTime() - c.notBefore.getTime()) / (c.notAfter.getTime() - c.notBefore.getTime());

describe('certificate renewal time', () => {
  it('falls within two thirds ± a twentieth of the lifetime, spread across certificates', () => {
    const fractions = Array.from({ length: 2000 }, () => fraction(cert(90 * DAY)));
    for (const f of fractions) {
      expect(f).toBeGreaterThanOrEqual(RENEW_AT - RENEW_JITTER);
      expect(f).toBeLessThan(RENEW_AT + RENEW_JITTER);
    }
    // Spread over the window, not bunched: each tenth of it gets some of 2000 draws.
    const buckets = new Set(
      fractions.map((f) => Math.floor(((f - RENEW_AT + RENEW_JITTER) / RENEW_JITTER) * 5)),
    );
    expect(buckets.size).toBe(10);
  });

  it('is the same for the same certificate (an agent restart does not move it)', () => {
    const c = cert(6000, '4f00aa');
    expect(renewalTime(c)).toEqual(renewalTime({ ...c }));
    expect(renewalTime(c).getTime()).toBeLessThan(c.notAfter.getTime());
  });
});

describe('certificate renewal retry delay', () => {
  it('doubles from a hundredth of the lifetime (1 s to 1 min), at most an hour', () => {
    const c = cert(90 * DAY);
    const now = new Date(c.notBefore.getTime() + 60 * DAY);
    expect([1, 2, 3, 7, 20].map((n) => retryDelayMs(n, c, now))).toEqual([
      60_000, 120_000, 240_000, 3_600_000, 3_600_000,
    ]);
    const short = cert(6000);
    expect(retryDelayMs(1, short, new Date(short.notBefore.getTime() + 4000))).toBe(1000);
  });

  it('keeps several tries before the expiry: at most a quarter of the time left', () => {
    const c = cert(90 * DAY);
    const now = new Date(c.notAfter.getTime() - 20 * 60_000);
    expect(retryDelayMs(10, c, now)).toBe(5 * 60_000);
    // Past the expiry it keeps trying at the base pace.
    expect(retryDelayMs(10, c, new Date(c.notAfter.getTime() + DAY))).toBe(60_000);
  });
});
