import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DeviceCertificateInfo } from '../device/device-certificate.js';
import { renewalTime } from './certificate-renewal.js';
import { CertificateRenewer, type RenewableIdentity } from './certificate-renewer.js';

const LIFETIME = 90_000;

/** An identity whose certificates are issued by the test's clock; renewals fail while `failing` is set. */
class Identity implements RenewableIdentity {
  current: DeviceCertificateInfo;
  failing?: Error;
  readonly renewals: Array<'due' | 'expired'> = [];

  constructor(private readonly clock: { t: number }) {
    this.current = this.issue();
  }

  certificate(): DeviceCertificateInfo {
    return this.current;
  }

  renewIdentity(reason: 'due' | 'expired'): Promise<DeviceCertificateInfo> {
    this.renewals.push(reason);
    if (this.failing) return Promise.reject(this.failing);
    this.current = this.issue();
    return Promise.resolve(this.current);
  }

  private issue(): DeviceCertificateInfo {
    return {
      serialNumber: randomBytes(16).toString('hex'),
      notBefore: new Date(this.clock.t),
      notAfter: new Date(this.clock.t + LIFETIME),
    };
  }
}

function setup(): {
  clock: { t: number };
  identity: Identity;
  renewer: CertificateRenewer;
  events: Array<Record<string, unknown>>;
} {
  const clock = { t: 1_700_000_000_000 };
  const identity = new Identity(clock);
  const events: Array<Record<string, unknown>> = [];
  const renewer = new CertificateRenewer(
    identity,
    (e) => events.push(e),
    () => new Date(clock.t),
  );
  return { clock, identity, renewer, events };
}

describe('CertificateRenewer', () => {
  it('announces the certificate, leaves it alone until its renewal time, then renews it once', async () => {
    const { clock, identity, renewer, events } = setup();
    const first = identity.current;
    await renewer.beforePoll();
    expect(events).toEqual([
      {
        event: 'certificate',
        serial: first.serialNumber,
        notAfter: first.notAfter,
        renewAt: renewalTime(first),
      },
    ]);
    clock.t = renewalTime(first).getTime() - 1;
    await renewer.beforePoll();
    expect(identity.renewals).toEqual([]);
    clock.t += 1;
    await renewer.beforePoll();
    await renewer.beforePoll();
    expect(identity.renewals).toEqual(['due']);
    expect(identity.current.serialNumber).not.toBe(first.serialNumber);
    expect(events.at(-1)).toMatchObject({ event: 'certificate', serial: identity.current.serialNumber });
  });

  it('a failed renewal is logged and retried with backoff, never thrown while the certificate is valid', async () => {
    const { clock, identity, renewer, events } = setup();
    const first = identity.current;
    identity.failing = new Error('POST /identity failed: ECONNREFUSED');
    clock.t = renewalTime(first).getTime();
    await expect(renewer.beforePoll()).resolves.toBeUndefined();
    expect(events.at(-1)).toMatchObject({ event: 'certificate-renewal-failed', failures: 1, retryIn: 1 });
    // Not again before the delay...
    clock.t += 999;
    await renewer.beforePoll();
    expect(identity.renewals).toHaveLength(1);
    // ...then again, with a doubled delay after a second failure.
    clock.t += 1;
    await renewer.beforePoll();
    expect(identity.renewals).toHaveLength(2);
    expect(events.at(-1)).toMatchObject({ event: 'certificate-renewal-failed', failures: 2, retryIn: 2 });
    identity.failing = undefined;
    clock.t += 2000;
    await renewer.beforePoll();
    expect(identity.renewals).toEqual(['due', 'due', 'due']);
    expect(identity.current.serialNumber).not.toBe(first.serialNumber);
  });

  it('a lapsed certificate is renewed before the poll, and a failure to do so reaches the loop', async () => {
    const { clock, identity, renewer, events } = setup();
    clock.t = identity.current.notAfter.getTime();
    identity.failing = new Error('NODE_NOT_ADMITTED: node is revoked');
    await expect(renewer.beforePoll()).rejects.toThrow(/revoked/);
    expect(events.at(-1)).toMatchObject({ event: 'certificate-expired' });
    identity.failing = undefined;
    await renewer.beforePoll();
    expect(identity.renewals).toEqual(['expired', 'expired']);
    expect(identity.current.notAfter.getTime()).toBeGreaterThan(clock.t);
  });
});
