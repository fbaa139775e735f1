import 'reflect-metadata';
import {
  createHash,
  createPublicKey,
  X509Certificate as NodeX509Certificate,
  type JsonWebKey,
} from 'node:crypto';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  X509Certificate,
} from '@peculiar/x509';
import { ekIssuerSerialSha256, ekKeySha256, type EkTemplate } from '#otter/tpm-wire';
import { AttestationError } from './attestation-error.js';
import { checkEndorsementKey } from './key-policy.js';
import { fromWire, publicKeyObject, type TpmPublic } from './tpm-wire.js';

/** A certificate as a caller may hold it: PEM text (one or more blocks for CAs), DER bytes, or a parsed one. */
export type CertificateInput = string | Uint8Array | X509Certificate | NodeX509Certificate;

export interface VerifyEkCertificateInput {
  /** The EK certificate, DER (as read from NV, trailing padding tolerated) or PEM. */
  certificate: string | Uint8Array;
  /** The EK public area the device presents; the certificate must certify exactly this key. */
  ekPublic: TpmPublic;
  /** Trust anchors: the TPM manufacturers' CA certificates (roots and/or intermediates). */
  trustedCas: readonly CertificateInput[];
  /** Untrusted intermediates that may complete the path to an anchor. */
  intermediates?: readonly CertificateInput[];
  /** The time validity is checked at; now by default. */
  now?: Date;
}

export interface VerifiedEkCertificate {
  /** Lower-case hex, as the certificate encodes it. */
  serialNumber: string;
  /** RFC 4514-style; often empty or "CN=unknown" for EK certificates, which name the TPM in the SAN instead. */
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** Hex SHA-256 over the EK's TPMT_PUBLIC as the device sent it. */
  ekPublicSha256: string;
  /**
   * The TPM's identity by its key: hex SHA-256 of the EK's SubjectPublicKeyInfo (see ekKeySha256 in
   * `#otter/tpm-wire`), the same whatever bytes around the key the device sends.
   */
  ekKeySha256: string;
  /** The certificate's identity: hex SHA-256 of its issuer and serial number (ekIssuerSerialSha256). */
  issuerSerialSha256: string;
  /** The TCG EK template the EK public area is an instance of. */
  template: EkTemplate['name'];
  /** TPM manufacturer, model and firmware version from the SAN directoryName (TCG OIDs 2.23.133.2.1-3). */
  tpm: { manufacturer?: string; model?: string; version?: string };
  /** Subjects from the EK certificate up to the trust anchor it chains to. */
  chain: string[];
}

const MAX_CERTIFICATE_BYTES = 64 * 1024;
const MAX_BUNDLE_CHARACTERS = 8 * 1024 * 1024;
const MAX_CHAIN_DEPTH = 8;
const TCG_KP_EK_CERTIFICATE = '2.23.133.8.1';
const OID = {
  subjectDirectoryAttributes: '2.5.29.9',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  certificatePolicies: '2.5.29.32',
  extKeyUsage: '2.5.29.37',
  tpmManufacturer: '2.23.133.2.1',
  tpmModel: '2.23.133.2.2',
  tpmVersion: '2.23.133.2.3',
} as const;

/**
 * Critical extensions this verifier understands. Any other critical extension fails the certificate
 * (RFC 5280 §4.2), so an unknown constraint is never silently ignored. Checked: basicConstraints (CA flag,
 * pathLen), keyUsage (keyCertSign on CAs; keyEncipherment on an RSA EK, keyAgreement on an ECC EK),
 * extKeyUsage (must include tcg-kp-EKCertificate on the EK certificate when present). Parsed as information
 * only: subjectAltName (the TPM's manufacturer/model/version, critical when the subject is empty, as the TCG
 * EK profile requires). Accepted without enforcing anything: subjectDirectoryAttributes (TPM specification
 * attributes) and certificatePolicies (this verifier trusts anchors, not policy OIDs).
 */
const UNDERSTOOD_CRITICAL: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectDirectoryAttributes,
  OID.certificatePolicies,
]);

/**
 * Verifies a TPM endorsement key certificate: parses it, builds a path to one of `trustedCas` by issuer name
 * and signature (each CA must be a CA: basicConstraints cA, keyCertSign, pathLen), checks every certificate
 * on the path (anchor included) is valid at `now`, that the EK certificate is not a CA and is for an EK, and
 * that its public key is exactly `ekPublic` (RSA modulus and exponent, or curve and point), whose public area
 * must be a TCG EK template (checkEndorsementKey).
 * Codes: EK_TEMPLATE_MISMATCH, EK_CERT_MALFORMED (unreadable), EK_CERT_UNTRUSTED (no valid path, refused extension or usage),
 * EK_CERT_EXPIRED (outside validity, including not yet valid), EK_CERT_KEY_MISMATCH.
 */
export async function verifyEkCertificate(input: VerifyEkCertificateInput): Promise<VerifiedEkCertificate> {
  const now = input.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new AttestationError('EK_CERT_MALFORMED', 'now must be a valid Date');
  }
  const ekPublic = input.ekPublic;
  if (typeof ekPublic !== 'object' || ekPublic === null || !Buffer.isBuffer(ekPublic.publicArea)) {
    throw new AttestationError('EK_CERT_KEY_MISMATCH', 'ekPublic must be a parsed TPM public key');
  }
  const template = checkEndorsementKey(ekPublic);
  const leaf = parseCertificates(input.certificate, 'EK certificate', true)[0]!;
  if (
    !Array.isArray(input.trustedCas) ||
    (input.intermediates !== undefined && !Array.isArray(input.intermediates))
  ) {
    throw new AttestationError('EK_CERT_MALFORMED', 'trustedCas and intermediates must be arrays');
  }
  const anchors = input.trustedCas.flatMap((ca, i) => parseCertificates(ca, `trusted CA ${i}`, false));
  const intermediates = (input.intermediates ?? []).flatMap((ca, i) =>
    parseCertificates(ca, `intermediate ${i}`, false),
  );
  if (anchors.length === 0) throw new AttestationError('EK_CERT_UNTRUSTED', 'no trusted CA given');

  const path = await buildPath(leaf, anchors, [...anchors, ...intermediates], now);

  for (const certificate of path) {
    if (now < certificate.notBefore || now > certificate.notAfter) {
      throw new AttestationError(
        'EK_CERT_EXPIRED',
        `${describe(certificate)} is valid from ${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()}, not at ${now.toISOString()}`,
      );
    }
  }
  checkCriticalExtensions(path);
  checkSameKey(leaf, ekPublic);
  checkEkUsage(leaf, ekPublic);

  return {
    serialNumber: leaf.serialNumber.toLowerCase(),
    subject: leaf.subject,
    issuer: leaf.issuer,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    ekPublicSha256: createHash('sha256').update(ekPublic.publicArea).digest('hex'),
    ekKeySha256: fromWire(() => ekKeySha256(ekPublic)),
    issuerSerialSha256: ekIssuerSerialSha256(leaf.issuer, leaf.serialNumber),
    template: template.name,
    tpm: tpmAttributes(leaf),
    chain: path.map((certificate) => certificate.subject),
  };
}

/**
 * The `issuerSerialSha256` verifyEkCertificate reports for an EK certificate with this issuer and serial: the
 * issuer as RFC 4514 text (`CN=...,O=...`, as this library, `openssl x509 -nameopt RFC2253` or a certificate
 * viewer prints it; spacing after commas is free), the serial in hex. For the enrollment allow-list.
 */
export function issuerSerialSha256(issuer: string, serialHex: string): string {
  let name = '';
  try {
    name = new Name(issuer).toString();
  } catch {
    // An unreadable name is refused below.
  }
  if (!name) {
    throw new AttestationError(
      'EK_CERT_MALFORMED',
      'the EK certificate issuer must be a distinguished name such as CN=Example TPM CA,O=Example',
    );
  }
  if (
    typeof serialHex !== 'string' ||
    serialHex.length > 128 ||
    !/^[0-9a-f]+(?::[0-9a-f]+)*$/i.test(serialHex)
  ) {
    throw new AttestationError('EK_CERT_MALFORMED', 'the EK certificate serial must be hex');
  }
  return ekIssuerSerialSha256(name, serialHex);
}

async function buildPath(
  leaf: X509Certificate,
  anchors: X509Certificate[],
  pool: X509Certificate[],
  now: Date,
): Promise<X509Certificate[]> {
  const isAnchor = (c: X509Certificate): boolean => anchors.some((a) => sameBytes(a.rawData, c.rawData));
  const path = [leaf];
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    const issuerName = Buffer.from(current.issuerName.toArrayBuffer());
    const candidates = pool
      .filter((c) => !path.some((p) => sameBytes(p.rawData, c.rawData)))
      // Same DER, or the same name in another string type (PrintableString vs UTF8String).
      .filter((c) => sameBytes(c.subjectName.toArrayBuffer(), issuerName) || c.subject === current.issuer)
      // A renewed CA with the same name and key: prefer the one valid now.
      .sort((a, b) => Number(!validAt(a, now)) - Number(!validAt(b, now)));
    let issuer: X509Certificate | undefined;
    for (const candidate of candidates) {
      if (await signedBy(current, candidate)) {
        issuer = candidate;
        break;
      }
    }
    if (!issuer) {
      throw new AttestationError(
        'EK_CERT_UNTRUSTED',
        `no trusted issuer signed ${describe(current)} (issuer ${current.issuer})`,
      );
    }
    checkIssuerIsCa(issuer, path.length - 1);
    path.push(issuer);
    if (isAnchor(issuer)) return path;
    current = issuer;
  }
  throw new AttestationError('EK_CERT_UNTRUSTED', `no trust anchor within ${MAX_CHAIN_DEPTH} certificates`);
}

async function signedBy(subject: X509Certificate, issuer: X509Certificate): Promise<boolean> {
  try {
    return await subject.verify({ publicKey: issuer, signatureOnly: true });
  } catch {
    return false;
  }
}

/** `intermediatesBelow`: how many CA certificates sit between this issuer and the EK certificate. */
function checkIssuerIsCa(issuer: X509Certificate, intermediatesBelow: number): void {
  const constraints = extension(issuer, OID.basicConstraints, BasicConstraintsExtension);
  if (!constraints?.ca)
    throw new AttestationError('EK_CERT_UNTRUSTED', `${describe(issuer)} is not a CA certificate`);
  if (constraints.pathLength !== undefined && intermediatesBelow > constraints.pathLength) {
    throw new AttestationError('EK_CERT_UNTRUSTED', `${describe(issuer)} path length constraint exceeded`);
  }
  const usage = extension(issuer, OID.keyUsage, KeyUsagesExtension);
  if (usage && !(usage.usages & KeyUsageFlags.keyCertSign)) {
    throw new AttestationError('EK_CERT_UNTRUSTED', `${describe(issuer)} may not sign certificates`);
  }
}

function checkCriticalExtensions(path: X509Certificate[]): void {
  for (const certificate of path) {
    for (const ext of certificate.extensions) {
      if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type)) {
        throw new AttestationError(
          'EK_CERT_UNTRUSTED',
          `${describe(certificate)} has unsupported critical extension ${ext.type}`,
        );
      }
    }
  }
}

function checkEkUsage(leaf: X509Certificate, ekPublic: TpmPublic): void {
  if (extension(leaf, OID.basicConstraints, BasicConstraintsExtension)?.ca) {
    throw new AttestationError('EK_CERT_UNTRUSTED', 'the EK certificate is a CA certificate');
  }
  const eku = extension(leaf, OID.extKeyUsage, ExtendedKeyUsageExtension);
  if (eku && !eku.usages.map(String).includes(TCG_KP_EK_CERTIFICATE)) {
    throw new AttestationError(
      'EK_CERT_UNTRUSTED',
      'extended key usage does not include tcg-kp-EKCertificate',
    );
  }
  const usage = extension(leaf, OID.keyUsage, KeyUsagesExtension);
  const needed = ekPublic.type === 'rsa' ? KeyUsageFlags.keyEncipherment : KeyUsageFlags.keyAgreement;
  if (usage && !(usage.usages & needed)) {
    throw new AttestationError('EK_CERT_UNTRUSTED', `key usage does not allow ${KeyUsageFlags[needed]}`);
  }
}

function checkSameKey(leaf: X509Certificate, ekPublic: TpmPublic): void {
  let certified: JsonWebKey;
  try {
    certified = createPublicKey({
      key: Buffer.from(leaf.publicKey.rawData),
      format: 'der',
      type: 'spki',
    }).export({
      format: 'jwk',
    });
  } catch {
    throw new AttestationError(
      'EK_CERT_MALFORMED',
      'the EK certificate public key is not an RSA or EC key node can read',
    );
  }
  const presented = publicKeyObject(ekPublic).export({ format: 'jwk' });
  const fields = presented.kty === 'RSA' ? (['kty', 'n', 'e'] as const) : (['kty', 'crv', 'x', 'y'] as const);
  if (!fields.every((field) => certified[field] !== undefined && certified[field] === presented[field])) {
    throw new AttestationError(
      'EK_CERT_KEY_MISMATCH',
      'the certificate does not certify this endorsement key',
    );
  }
}

function tpmAttributes(leaf: X509Certificate): VerifiedEkCertificate['tpm'] {
  const result: VerifiedEkCertificate['tpm'] = {};
  try {
    const san = leaf.getExtension(SubjectAlternativeNameExtension);
    for (const item of san?.names.items ?? []) {
      if (item.type !== 'dn') continue;
      const name = new Name(item.value);
      result.manufacturer ??= name.getField(OID.tpmManufacturer)[0];
      result.model ??= name.getField(OID.tpmModel)[0];
      result.version ??= name.getField(OID.tpmVersion)[0];
    }
  } catch {
    // Informational only: an unreadable SAN leaves the fields out.
  }
  return result;
}

/** Extensions are decoded into their classes (BasicConstraintsExtension, ...) when the certificate is parsed. */
function extension<T extends BasicConstraintsExtension | KeyUsagesExtension | ExtendedKeyUsageExtension>(
  certificate: X509Certificate,
  oid: string,
  type: abstract new (...args: never[]) => T,
): T | null {
  const found = certificate.extensions.find((ext) => ext.type === oid);
  if (!found) return null;
  if (!(found instanceof type)) {
    throw new AttestationError(
      'EK_CERT_MALFORMED',
      `${describe(certificate)} has an unreadable extension ${oid}`,
    );
  }
  return found;
}

function parseCertificates(input: unknown, what: string, single: boolean): X509Certificate[] {
  if (input instanceof X509Certificate) return [input];
  if (input instanceof NodeX509Certificate) return [parseDer(input.raw, what)];
  if (typeof input === 'string') {
    // One EK certificate from a device, or a trust bundle from configuration (larger, but still bounded).
    if (input.length > (single ? 2 * MAX_CERTIFICATE_BYTES : MAX_BUNDLE_CHARACTERS)) {
      throw new AttestationError('EK_CERT_MALFORMED', `${what} is too large`);
    }
    const blocks = [
      ...input.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*)-----END CERTIFICATE-----/g),
    ];
    if (blocks.length === 0)
      throw new AttestationError('EK_CERT_MALFORMED', `${what} is not a PEM certificate`);
    const chosen = single ? blocks.slice(0, 1) : blocks;
    return chosen.map((block) => parseDer(Buffer.from(block[1]!.replace(/\s+/g, ''), 'base64'), what));
  }
  if (input instanceof Uint8Array)
    return [parseDer(Buffer.from(input.buffer, input.byteOffset, input.byteLength), what)];
  throw new AttestationError('EK_CERT_MALFORMED', `${what} must be PEM text, DER bytes or a certificate`);
}

function parseDer(der: Buffer, what: string): X509Certificate {
  if (der.length === 0 || der.length > MAX_CERTIFICATE_BYTES) {
    throw new AttestationError('EK_CERT_MALFORMED', `${what} is empty or too large`);
  }
  const exact = der.subarray(0, derLength(der) ?? der.length);
  try {
    const certificate = new X509Certificate(exact);
    // Touch what the checks read, so a lazily parsed field fails here, as malformed.
    void [
      certificate.subject,
      certificate.issuer,
      certificate.notBefore,
      certificate.notAfter,
      certificate.extensions,
    ];
    void certificate.serialNumber;
    return certificate;
  } catch {
    throw new AttestationError('EK_CERT_MALFORMED', `${what} is not a readable X.509 certificate`);
  }
}

/**
 * The length of the outer DER SEQUENCE, or undefined. TPM NV indices are often larger than the certificate
 * and padded; the padding is cut off before parsing.
 */
function derLength(der: Buffer): number | undefined {
  if (der.length < 2 || der[0] !== 0x30) return undefined;
  const first = der[1]!;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 3 || der.length < 2 + octets) return undefined;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + der[2 + i]!;
  const total = 2 + octets + length;
  return total <= der.length ? total : undefined;
}

function validAt(certificate: X509Certificate, now: Date): boolean {
  return now >= certificate.notBefore && now <= certificate.notAfter;
}

function sameBytes(a: ArrayBuffer, b: ArrayBuffer | Buffer): boolean {
  return Buffer.from(a).equals(Buffer.isBuffer(b) ? b : Buffer.from(b));
}

function describe(certificate: X509Certificate): string {
  return `certificate "${certificate.subject || '(empty subject)'}" (serial ${certificate.serialNumber})`;
}
