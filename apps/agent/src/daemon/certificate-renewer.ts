import type { DeviceCertificateInfo } from '../device/device-certificate.js';
import { renewalTime, retryDelayMs } from './certificate-renewal.js';

/** The part of DeviceAgent the renewer drives. */
export interface RenewableIdentity {
  certificate(): DeviceCertificateInfo | undefined;
  /** Proves the AK again and stores the new certificate; throws (and keeps the old one) on failure. */
  renewIdentity(reason: 'due' | 'expired'): Promise<DeviceCertificateInfo>;
}

/**
 * Keeps the device certificate valid from the update loop: before each poll it renews a certificate that is due
 * (certificate-renewal.ts) and never lets a failed renewal stop the poll while the old certificate is valid: the
 * failure is logged and retried with backoff. A certificate that has already lapsed (the node was off past its
 * expiry) must be renewed before anything else works, so that failure goes to the loop, which backs off too.
 */
export class CertificateRenewer {
  private failures = 0;
  private retryAt?: number;
  private announced?: string;

  constructor(
    private readonly identity: RenewableIdentity,
    private readonly log: (event: Record<string, unknown>) => void,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async beforePoll(): Promise<void> {
    const cert = this.identity.certificate();
    // No identity yet: the poll itself says so (NO_IDENTITY).
    if (!cert) return;
    this.announce(cert);
    const now = this.now();
    if (now >= cert.notAfter) {
      this.log({ event: 'certificate-expired', serial: cert.serialNumber, notAfter: cert.notAfter });
      await this.renew('expired');
      return;
    }
    if (now.getTime() < (this.retryAt ?? renewalTime(cert).getTime())) return;
    try {
      await this.renew('due');
    } catch (error) {
      this.failures += 1;
      const delay = retryDelayMs(this.failures, cert, now);
      this.retryAt = now.getTime() + delay;
      this.log({
        event: 'certificate-renewal-failed',
        error: error instanceof Error ? error.message : String(error),
        // Otter's error code when it answered (NODE_NOT_ADMITTED, INTERNAL...), none when it could not be reached.
        ...(typeof (error as { code?: unknown }).code === 'string' && {
          code: (error as { code: string }).code,
        }),
        failures: this.failures,
        retryIn: delay / 1000,
        notAfter: cert.notAfter,
      });
    }
  }

  private async renew(reason: 'due' | 'expired'): Promise<void> {
    const renewed = await this.identity.renewIdentity(reason);
    this.failures = 0;
    this.retryAt = undefined;
    this.announce(renewed);
  }

  /** One line per certificate: which one the node holds and when it will renew it. */
  private announce(cert: DeviceCertificateInfo): void {
    if (this.announced === cert.serialNumber) return;
    this.announced = cert.serialNumber;
    this.log({
      event: 'certificate',
      serial: cert.serialNumber,
      notAfter: cert.notAfter,
      renewAt: renewalTime(cert),
    });
  }
}
