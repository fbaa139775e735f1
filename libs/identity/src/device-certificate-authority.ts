// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect polyfill before it loads.
import 'reflect-metadata';
import {
  createPrivateKey,
  randomBytes,
  type KeyObject,
  webcrypto,
  X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { HARDWARE_ID_PATTERN } from '#otter/contracts';
import { OtterError } from '#otter/errors';
import { HARDWARE_URN_PREFIX, isNodeId, NODE_URN_PREFIX } from './identity-names.js';
import { isP256PublicKey } from './p256.js';
import { loadOrCreateSealedJson, writePublicFile } from './sealed-file.js';

export const DEVICE_CA_SUBJECT = 'CN=Otter Device CA';
export const DEVICE_CA_KEY_FILE = 'device-ca.sealed.json';
export const DEVICE_CA_CERT_FILE = 'device-ca.pem';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const TWENTY_YEARS = 20 * 365 * 24 * 3600;
/** Far more than any certificate (one of ours is about 700 bytes); bounds the parser's work on hostile input. */
const MAX_CERTIFICATE_PEM_CHARS = 16 * 1024;

export interface DeviceCertificateAuthorityOptions {
  dataDir: string;
  /** Seals the CA private key at rest (see OnlineKeyStore.passphraseFor). */
  passphrase: string;
  /** Validity of the CA certificate created on first use; 20 years unless set. */
  caLifetimeSeconds?: number;
  /** The clock for issuing and verifying; tests move it. */
  now?: () => Date;
}

export interface IssueDeviceCertificate {
  nodeId: string;
  hardwareId: string;
  /** The TPM-resident device signing key, already verified through TPM2_Certify: EC P-256. */
  publicKey: KeyObject;
  lifetimeSeconds: number;
}

export interface IssuedDeviceCertificate {
  pem: string;
  /** Lower-case hex of a positive 16-byte random serial. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

export interface VerifiedDeviceCertificate {
  nodeId: string;
  hardwareId: string | undefined;
  serialNumber: string;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
}

interface StoredCa {
  v: 1;
  /** PKCS#8 PEM of the CA's P-256 private key. */
  privateKey: string;
  /** The CA certificate, inside the sealed (authenticated) file: device-ca.pem is only a published copy. */
  certificate: string;
  createdAt: string;
}

interface LoadedCa {
  signingKey: webcrypto.CryptoKey;
  certificate: x509.X509Certificate;
  nodeCertificate: NodeX509Certificate;
  pem: string;
}

/**
 * Otter's device CA: an ECDSA P-256 key and self-signed certificate created on first use in
 * `<dataDir>/keys/` (the key sealed with the key passphrase, the certificate published as device-ca.pem).
 * It certifies the TPM-resident device key of each node once Otter has verified that key through the TPM.
 */
export class DeviceCertificateAuthority {
  private loading?: Promise<LoadedCa>;
  private readonly now: () => Date;

  constructor(private readonly options: DeviceCertificateAuthorityOptions) {
    this.now = options.now ?? (() => new Date());
  }

  get keyFile(): string {
    return join(this.options.dataDir, 'keys', DEVICE_CA_KEY_FILE);
  }

  get certificateFile(): string {
    return join(this.options.dataDir, 'keys', DEVICE_CA_CERT_FILE);
  }

  /** The CA certificate (PEM), creating the CA if this data dir has none yet. */
  async certificatePem(): Promise<string> {
    return (await this.ca()).pem;
  }

  async issue(request: IssueDeviceCertificate): Promise<IssuedDeviceCertificate> {
    const { nodeId, hardwareId, publicKey, lifetimeSeconds } = request;
    if (!isNodeId(nodeId)) throw new OtterError('VALIDATION_FAILED', 'invalid node id', { nodeId });
    if (!HARDWARE_ID_PATTERN.test(hardwareId)) {
      throw new OtterError('VALIDATION_FAILED', 'invalid hardware id', { hardwareId });
    }
    if (!isP256PublicKey(publicKey)) {
      throw new OtterError('VALIDATION_FAILED', 'the device key must be an EC P-256 public key');
    }
    if (!Number.isSafeInteger(lifetimeSeconds) || lifetimeSeconds <= 0) {
      throw new OtterError('VALIDATION_FAILED', 'certificate lifetime must be a positive number of seconds', {
        lifetimeSeconds,
      });
    }
    const ca = await this.ca();
    // X.509 times have whole seconds: truncate so the returned dates are exactly the certificate's.
    const notBefore = new Date(Math.floor(this.now().getTime() / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + lifetimeSeconds * 1000);
    if (notAfter > ca.certificate.notAfter) {
      throw new OtterError('VALIDATION_FAILED', 'the certificate would outlive the device CA', {
        caNotAfter: ca.certificate.notAfter.toISOString(),
      });
    }
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const serialNumber = randomSerialNumber();
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber,
      // The JSON form sets the attribute value verbatim: no DN-string parsing of caller data.
      subject: [{ CN: [nodeId] }],
      issuer: ca.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey: spki,
      signingKey: ca.signingKey,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `${NODE_URN_PREFIX}${nodeId}` },
          { type: 'url', value: `${HARDWARE_URN_PREFIX}${hardwareId}` },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
        await x509.SubjectKeyIdentifierExtension.create(spki),
      ],
    });
    return { pem: certificate.toString('pem'), serialNumber, notBefore, notAfter };
  }

  /**
   * Accepts only a device certificate this CA issued that is valid now; anything else is UNAUTHENTICATED with
   * the reason in `details.reason`. Whether the node is still allowed (revoked, rejected) is the caller's check.
   */
  async verify(pem: string): Promise<VerifiedDeviceCertificate> {
    const ca = await this.ca();
    if (typeof pem !== 'string' || pem.length > MAX_CERTIFICATE_PEM_CHARS) throw rejected('malformed');
    let cert: NodeX509Certificate;
    let parsed: x509.X509Certificate;
    try {
      cert = new NodeX509Certificate(pem);
      parsed = new x509.X509Certificate(cert.raw);
    } catch {
      throw rejected('malformed');
    }
    // checkIssued compares the issuer name and the authority/subject key identifiers; verify checks the signature.
    if (!cert.checkIssued(ca.nodeCertificate)) throw rejected('unknown_issuer');
    if (!cert.verify(ca.nodeCertificate.publicKey)) throw rejected('bad_signature');
    const now = this.now();
    if (now < cert.validFromDate) throw rejected('not_yet_valid');
    if (now > cert.validToDate) throw rejected('expired');
    if (cert.ca) throw rejected('not_a_device_certificate');
    const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension);
    if (!eku?.usages.includes(x509.ExtendedKeyUsage.clientAuth)) throw rejected('not_a_device_certificate');
    const uris = (parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [])
      .filter((n) => n.type === 'url')
      .map((n) => n.value);
    const nodeUris = uris.filter((u) => u.startsWith(NODE_URN_PREFIX));
    const nodeId = nodeUris.length === 1 ? nodeUris[0].slice(NODE_URN_PREFIX.length) : undefined;
    if (!isNodeId(nodeId) || parsed.subject !== `CN=${nodeId}`) throw rejected('bad_subject');
    const publicKey = cert.publicKey;
    if (!isP256PublicKey(publicKey)) throw rejected('bad_public_key');
    const hardwareUri = uris.find((u) => u.startsWith(HARDWARE_URN_PREFIX));
    return {
      nodeId,
      hardwareId: hardwareUri?.slice(HARDWARE_URN_PREFIX.length),
      serialNumber: cert.serialNumber.toLowerCase(),
      publicKey,
      notBefore: cert.validFromDate,
      notAfter: cert.validToDate,
    };
  }

  private ca(): Promise<LoadedCa> {
    if (!this.loading) {
      this.loading = this.load();
      // A failed load (say, a wrong passphrase) is not cached: the next call tries again.
      this.loading.catch(() => (this.loading = undefined));
    }
    return this.loading;
  }

  private async load(): Promise<LoadedCa> {
    const { value } = await loadOrCreateSealedJson(this.keyFile, this.options.passphrase, parseStoredCa, () =>
      this.createCa(),
    );
    const signingKey = await webcrypto.subtle.importKey(
      'pkcs8',
      createPrivateKey(value.privateKey).export({ type: 'pkcs8', format: 'der' }),
      EC_P256,
      false,
      ['sign'],
    );
    const certificate = new x509.X509Certificate(value.certificate);
    const pem = certificate.toString('pem');
    await this.publishCertificate(pem);
    return { signingKey, certificate, nodeCertificate: new NodeX509Certificate(pem), pem };
  }

  private async createCa(): Promise<StoredCa> {
    const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
    const notBefore = new Date(Math.floor(this.now().getTime() / 1000) * 1000);
    const lifetime = this.options.caLifetimeSeconds ?? TWENTY_YEARS;
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerialNumber(),
      name: DEVICE_CA_SUBJECT,
      notBefore,
      notAfter: new Date(notBefore.getTime() + lifetime * 1000),
      keys,
      signingAlgorithm: EC_P256,
      extensions: [
        // Path length 0: this CA signs device certificates only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    return {
      v: 1,
      privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
        .export({ type: 'pkcs8', format: 'pem' })
        .toString(),
      certificate: certificate.toString('pem'),
      createdAt: new Date().toISOString(),
    };
  }

  /** device-ca.pem mirrors the sealed certificate; every process writes the same bytes, so races are harmless. */
  private async publishCertificate(pem: string): Promise<void> {
    const current = await readFile(this.certificateFile, 'utf8').catch(() => undefined);
    if (current !== pem) await writePublicFile(this.certificateFile, pem);
  }
}

function rejected(reason: string): OtterError {
  return new OtterError('UNAUTHENTICATED', 'device certificate rejected', { reason });
}

/** 16 random bytes, top bit clear (a positive INTEGER) and next bit set (no leading zero byte to strip). */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function parseStoredCa(value: unknown): StoredCa {
  const v = value as Partial<StoredCa> | null;
  if (v?.v !== 1 || typeof v.privateKey !== 'string' || typeof v.certificate !== 'string') {
    throw new Error('the device CA key file has an unknown format');
  }
  return v as StoredCa;
}
