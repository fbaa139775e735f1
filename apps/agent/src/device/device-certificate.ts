import { X509Certificate } from 'node:crypto';

/** What the agent needs to know of its device certificate to renew it in time. */
export interface DeviceCertificateInfo {
  /** Lower-case hex, as Otter's device CA writes it. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

/** Reads the agent's own certificate (PEM, as Otter issued it). */
export function describeCertificate(pem: string): DeviceCertificateInfo {
  const cert = new X509Certificate(pem);
  return {
    serialNumber: cert.serialNumber.toLowerCase(),
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
  };
}
