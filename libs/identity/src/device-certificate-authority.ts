// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect polyfill before it loads.
import 'reflect-metadata';
import {
  createPrivateKey,
  type KeyObject,
  webcrypto,
  X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { HARDWARE_ID_PATTERN } from '#otter/contracts';
import { OtterError } from '#otter/errors';
import { issuingIndex, successorDue } from './device-ca-rotation.js';
import {
  createCa,
  DEVICE_CA_CERT_FILE,
  DEVICE_CA_KEY_FILE,
  EC_P256,
  listCaGenerations,
  loadCaGeneration,
  loadOrCreateCaGeneration,
  randomSerialNumber,
  removeCaGeneration,
  type StoredCa,
} from './device-ca-store.js';
import { HARDWARE_URN_PREFIX, isNodeId, NODE_URN_PREFIX } from './identity-names.js';
import { isP256PublicKey } from './p256.js';
import { writePublicFile } from './sealed-file.js';

export { DEVICE_CA_SUBJECT, DEVICE_CA_KEY_FILE, DEVICE_CA_CERT_FILE } from './device-ca-store.js';

const TWENTY_YEARS = 20 * 365 * 24 * 3600;
/** Far more than any certificate (one of ours is about 700 bytes); bounds the parser's work on hostile input. */
const MAX_CERTIFICATE_PEM_CHARS = 16 * 1024;

export interface DeviceCertificateAuthorityOptions {
  dataDir: string;
  /** Seals the CA private key at rest (see OnlineKeyStore.passphraseFor). */
  passphrase: string;
  /** Validity of each CA certificate this process creates (the first and every successor); 20 years unless set. */
  caLifetimeSeconds?: number;
  /** The clock for issuing, verifying and rotating; tests move it. */
  now?: () => Date;
  /** Told when a CA generation is created or retired (the module logs it). */
  onEvent?: (event: DeviceCaEvent) => void;
}

export interface DeviceCaEvent {
  kind: 'created' | 'retired';
  generation: number;
  notAfter: Date;
}

export interface IssueDeviceCertificate {
  nodeId: string;
  hardwareId: string;
  /** The TPM-resident device signing key, already verified through TPM2_Certify: EC P-256. */
  publicKey: KeyObject;
  /** Asked-for lifetime; the certificate never outlives its CA, so it may end earlier (see notAfter). */
  lifetimeSeconds: number;
}

export interface IssuedDeviceCertificate {
  pem: string;
  /** Lower-case hex of a positive 16-byte random serial. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** The CA generation that signed it. */
  caGeneration: number;
}

export interface VerifiedDeviceCertificate {
  nodeId: string;
  hardwareId: string | undefined;
  serialNumber: string;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
}

interface LoadedCa {
  generation: number;
  signingKey: webcrypto.CryptoKey;
  certificate: x509.X509Certificate;
  nodeCertificate: NodeX509Certificate;
  pem: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Otter's device CA: ECDSA P-256 keys and self-signed certificates in `<dataDir>/keys/`, one file per
 * generation, each key sealed with the key passphrase. It certifies the TPM-resident device key of each node
 * once Otter has verified that key through the TPM. The CA rotates itself ahead of its expiry
 * (device-ca-rotation.ts): every process sharing the data dir sees the same generations, creates a successor
 * at most once between them (link()), verifies certificates of every generation still valid, and publishes
 * their certificates as the trust bundle device-ca.pem.
 */
export class DeviceCertificateAuthority {
  private generations: LoadedCa[] = [];
  private maintaining?: Promise<void>;
  private readonly now: () => Date;

  constructor(private readonly options: DeviceCertificateAuthorityOptions) {
    this.now = options.now ?? (() => new Date());
  }

  get keysDir(): string {
    return join(this.options.dataDir, 'keys');
  }

  /** The first generation's key file. */
  get keyFile(): string {
    return join(this.keysDir, DEVICE_CA_KEY_FILE);
  }

  get certificateFile(): string {
    return join(this.keysDir, DEVICE_CA_CERT_FILE);
  }

  /** The certificate (PEM) of the CA that issues now, creating the CA if this data dir has none yet. */
  async certificatePem(): Promise<string> {
    await this.maintain();
    return this.issuer().pem;
  }

  /** Every CA certificate a device certificate valid now may chain to, the newest first: device-ca.pem. */
  async trustBundlePem(): Promise<string> {
    await this.maintain();
    return this.bundle();
  }

  /**
   * Brings this process up to date with the data dir: loads generations other processes created, creates the
   * successor when it is due, retires expired generations, and publishes the trust bundle. Cheap when nothing
   * changed (one readdir). Runs once at a time per process.
   */
  maintain(): Promise<void> {
    if (!this.maintaining) {
      this.maintaining = this.refresh().finally(() => (this.maintaining = undefined));
    }
    return this.maintaining;
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
    await this.maintain();
    const ca = this.issuer();
    // X.509 times have whole seconds: truncate so the returned dates are exactly the certificate's.
    const notBefore = new Date(Math.floor(this.now().getTime() / 1000) * 1000);
    // Never past the CA's own expiry. Rotation keeps a third of the issuing CA's lifetime ahead, so with the
    // lifetimes the config allows this does not cut anything; it is the guarantee, not the plan.
    const notAfter = new Date(Math.min(notBefore.getTime() + lifetimeSeconds * 1000, ca.notAfter.getTime()));
    if (notAfter <= notBefore) {
      throw new OtterError('VALIDATION_FAILED', 'the device CA has expired', {
        caNotAfter: ca.notAfter.toISOString(),
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
    return {
      pem: certificate.toString('pem'),
      serialNumber,
      notBefore,
      notAfter,
      caGeneration: ca.generation,
    };
  }

  /**
   * Accepts only a device certificate one of this CA's generations issued that is valid now (a certificate of
   * a CA that has since handed over stays good until it expires); anything else is UNAUTHENTICATED with the
   * reason in `details.reason`. Whether the node is still allowed (revoked, rejected) is the caller's check.
   */
  async verify(pem: string): Promise<VerifiedDeviceCertificate> {
    if (this.generations.length === 0) await this.maintain();
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
    let candidates = this.generations.filter((ca) => cert.checkIssued(ca.nodeCertificate));
    if (candidates.length === 0) {
      // Perhaps a successor another replica created a moment ago: one readdir finds out.
      await this.maintain();
      candidates = this.generations.filter((ca) => cert.checkIssued(ca.nodeCertificate));
    }
    if (candidates.length === 0) throw rejected('unknown_issuer');
    const ca = candidates.find((c) => cert.verify(c.nodeCertificate.publicKey));
    if (!ca) throw rejected('bad_signature');
    const now = this.now();
    if (now < cert.validFromDate) throw rejected('not_yet_valid');
    if (now > cert.validToDate) throw rejected('expired');
    if (now > ca.notAfter) throw rejected('issuer_expired');
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

  private issuer(): LoadedCa {
    return this.generations[issuingIndex(this.generations, this.now())];
  }

  private bundle(): string {
    const now = this.now();
    return this.generations
      .filter((ca) => ca.notAfter >= now)
      .reverse()
      .map((ca) => ca.pem)
      .join('');
  }

  private async refresh(): Promise<void> {
    const present = await listCaGenerations(this.keysDir);
    // Generations another process retired go here too; those it created are loaded (one scrypt each, once).
    this.generations = this.generations.filter((ca) => present.includes(ca.generation));
    for (const generation of present) {
      if (this.generations.some((ca) => ca.generation === generation)) continue;
      const stored = await loadCaGeneration(this.keysDir, generation, this.options.passphrase);
      if (stored) this.add(await loadCa(generation, stored));
    }
    if (this.generations.length === 0) await this.create(1);
    const newest = this.generations[this.generations.length - 1];
    if (successorDue(newest, this.now())) await this.create(newest.generation + 1);
    await this.retireExpired();
    const bundle = this.bundle();
    const published = await readFile(this.certificateFile, 'utf8').catch(() => undefined);
    // Every process derives the same bundle from the same files, so two writing at once write the same bytes.
    if (published !== bundle) await writePublicFile(this.certificateFile, bundle);
  }

  /**
   * Creates generation `n` (the first, or the newest's successor), or adopts it if another process got there
   * first: the one place a CA key comes into being.
   */
  private async create(generation: number): Promise<void> {
    const { value, created } = await loadOrCreateCaGeneration(
      this.keysDir,
      generation,
      this.options.passphrase,
      () => createCa(this.now(), this.options.caLifetimeSeconds ?? TWENTY_YEARS),
    );
    const loaded = await loadCa(generation, value);
    this.add(loaded);
    if (created) this.options.onEvent?.({ kind: 'created', generation, notAfter: loaded.notAfter });
  }

  private add(ca: LoadedCa): void {
    this.generations = [...this.generations, ca].sort((a, b) => a.generation - b.generation);
  }

  /** An expired generation's key can sign nothing anyone accepts: delete it (never the newest). */
  private async retireExpired(): Promise<void> {
    const now = this.now();
    const newest = this.generations[this.generations.length - 1];
    for (const ca of this.generations.filter((c) => c !== newest && c.notAfter < now)) {
      await removeCaGeneration(this.keysDir, ca.generation);
      this.generations = this.generations.filter((c) => c !== ca);
      this.options.onEvent?.({ kind: 'retired', generation: ca.generation, notAfter: ca.notAfter });
    }
  }
}

async function loadCa(generation: number, stored: StoredCa): Promise<LoadedCa> {
  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(stored.privateKey).export({ type: 'pkcs8', format: 'der' }),
    EC_P256,
    false,
    ['sign'],
  );
  const certificate = new x509.X509Certificate(stored.certificate);
  // With its final newline, so the trust bundle is these PEMs put end to end.
  const pem = `${certificate.toString('pem').trimEnd()}\n`;
  return {
    generation,
    signingKey,
    certificate,
    nodeCertificate: new NodeX509Certificate(pem),
    pem,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
  };
}

function rejected(reason: string): OtterError {
  return new OtterError('UNAUTHENTICATED', 'device certificate rejected', { reason });
}
