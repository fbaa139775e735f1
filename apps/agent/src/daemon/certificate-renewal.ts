import { createHash } from 'node:crypto';
import type { DeviceCertificateInfo } from '../device/device-certificate.js';

/** Renewal aims at two thirds of the certificate's lifetime... */
export const RENEW_AT = 2 / 3;
/**
 * ...give or take a twentieth of the lifetime (61.7 % to 71.7 %: days 55.5 to 64.5 of the default 90), so a
 * fleet enrolled or renewed together (a batch, a CA hand-over) does not come back in one burst. The offset is
 * drawn from the certificate's random serial: spread across nodes, yet the same after an agent restart.
 */
export const RENEW_JITTER = 1 / 20;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** When this certificate should be renewed. */
export function renewalTime(cert: DeviceCertificateInfo): Date {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  const draw = createHash('sha256').update(cert.serialNumber).digest().readUInt32BE(0) / 2 ** 32;
  const fraction = RENEW_AT + (2 * draw - 1) * RENEW_JITTER;
  return new Date(cert.notBefore.getTime() + Math.round(lifetime * fraction));
}

/**
 * How long to wait after the `failures`-th failed renewal in a row: from a hundredth of the lifetime (1 s to
 * 1 min), doubling, at most an hour and at most a quarter of the time the certificate has left, so several
 * tries still fit before it expires.
 */
export function retryDelayMs(failures: number, cert: DeviceCertificateInfo, now: Date): number {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  const base = Math.min(MINUTE, Math.max(SECOND, lifetime / 100));
  const cap = Math.max(base, Math.min(HOUR, (cert.notAfter.getTime() - now.getTime()) / 4));
  return Math.round(Math.min(cap, base * 2 ** Math.min(Math.max(failures, 1) - 1, 30)));
}
