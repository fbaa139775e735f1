import 'reflect-metadata';
import { createHash, createPrivateKey, webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { ekIssuerSerialSha256 } from '#otter/tpm-wire';
import {
  parseTpm2bPublic,
  parseTpmtPublic,
  publicKeyObject,
  verifyEkCertificate,
  type TpmPublic,
} from './index.js';
import { asyncAttestationErrorCode, TEST_HANDLES, Tpm2Tools } from './testing.js';

const EK_CERT_NV = { rsa: '0x01c00002', ecc: '0x01c00016' } as const;

interface TpmUnderTest {
  tpm: SoftwareTpm;
  tools: Tpm2Tools;
  cas: string[];
  certs: { rsa: Buffer; ecc: Buffer };
  eks: { rsa: TpmPublic; ecc: TpmPublic };
}

async function provision(): Promise<TpmUnderTest> {
  const tpm = await startSoftwareTpm();
  const tools = await Tpm2Tools.create(tpm.tcti);
  return {
    tpm,
    tools,
    cas: await Promise.all(tpm.ca.certificateFiles.map((file) => readFile(file, 'utf8'))),
    certs: { rsa: await tools.nvRead(EK_CERT_NV.rsa), ecc: await tools.nvRead(EK_CERT_NV.ecc) },
    eks: {
      rsa: parseTpm2bPublic(await tools.readPublic(TEST_HANDLES.ekRsa)),
      ecc: parseTpm2bPublic(await tools.readPublic(TEST_HANDLES.ekEccP384)),
    },
  };
}

describe('verifyEkCertificate with EK certificates from swtpm NV', () => {
  // Two TPMs from two manufacturers: each swtpm here has its own local CA.
  let a: TpmUnderTest;
  let b: TpmUnderTest;

  beforeAll(async () => {
    [a, b] = await Promise.all([provision(), provision()]);
  });

  afterAll(async () => {
    for (const t of [a, b]) {
      await t?.tpm.stop();
      await t?.tools.cleanup();
    }
  });

  for (const kind of ['rsa', 'ecc'] as const) {
    it(`verifies the ${kind.toUpperCase()} EK certificate to the manufacturer CA and binds it to the EK public`, async () => {
      const result = await verifyEkCertificate({
        certificate: a.certs[kind],
        ekPublic: a.eks[kind],
        trustedCas: a.cas,
      });
      expect(result.issuer).toBe('CN=swtpm-localca');
      expect(result.serialNumber).toMatch(/^[0-9a-f]+$/);
      expect(result.ekPublicSha256).toBe(createHash('sha256').update(a.eks[kind].publicArea).digest('hex'));
      // swtpm names the TPM in a critical SAN directoryName of TCG attributes.
      expect(result.tpm).toEqual({ manufacturer: 'id:00001014', model: 'swtpm', version: 'id:20191023' });
      expect(result.chain).toEqual([result.subject, 'CN=swtpm-localca']);

      // PEM input, and DER with the padding an NV index may carry.
      const pem = new X509Certificate(a.certs[kind]).toString('pem');
      await expect(
        verifyEkCertificate({ certificate: pem, ekPublic: a.eks[kind], trustedCas: a.cas }),
      ).resolves.toMatchObject({
        serialNumber: result.serialNumber,
      });
      const padded = Buffer.concat([a.certs[kind], Buffer.alloc(64, 0xff)]);
      await expect(
        verifyEkCertificate({ certificate: padded, ekPublic: a.eks[kind], trustedCas: a.cas }),
      ).resolves.toBeDefined();
    });
  }

  it('names the TPM by its key and the certificate by issuer and serial, and knows the EK template', async () => {
    for (const [kind, template] of [
      ['rsa', 'L-1'],
      ['ecc', 'H-3'],
    ] as const) {
      const result = await verifyEkCertificate({
        certificate: a.certs[kind],
        ekPublic: a.eks[kind],
        trustedCas: a.cas,
      });
      expect(result.template).toBe(template);
      const spki = new X509Certificate(a.certs[kind]).publicKey.rawData;
      expect(result.ekKeySha256).toBe(createHash('sha256').update(Buffer.from(spki)).digest('hex'));
      expect(result.issuerSerialSha256).toBe(ekIssuerSerialSha256('CN=swtpm-localca', result.serialNumber));
    }
  });

  it('refuses the certified key in a public area that is not its TCG template (exponent 65537 spelled out)', async () => {
    // TPMT_PUBLIC of template L-1: type, nameAlg, attributes, authPolicy (2 + 32), symmetric (6), scheme,
    // keyBits, then the u32 exponent field at byte 52.
    const area = Buffer.from(a.eks.rsa.publicArea);
    expect(area.readUInt32BE(52)).toBe(0);
    area.writeUInt32BE(65537, 52);
    const spelledOut = parseTpmtPublic(area);
    // The same key: before templates were checked, the certificate matched it.
    expect(publicKeyObject(spelledOut).export({ format: 'jwk' })).toEqual(
      publicKeyObject(a.eks.rsa).export({ format: 'jwk' }),
    );
    expect(
      await asyncAttestationErrorCode(() =>
        verifyEkCertificate({ certificate: a.certs.rsa, ekPublic: spelledOut, trustedCas: a.cas }),
      ),
    ).toBe('EK_TEMPLATE_MISMATCH');
  });

  it('builds the path through an untrusted intermediate to a trusted root, and not without it', async () => {
    const [root, intermediate] = a.cas as [string, string];
    const result = await verifyEkCertificate({
      certificate: a.certs.ecc,
      ekPublic: a.eks.ecc,
      trustedCas: [root],
      intermediates: [intermediate],
    });
    expect(result.chain).toEqual([result.subject, 'CN=swtpm-localca', 'CN=swtpm-localca-rootca']);
    expect(
      await asyncAttestationErrorCode(() =>
        verifyEkCertificate({ certificate: a.certs.ecc, ekPublic: a.eks.ecc, trustedCas: [root] }),
      ),
    ).toBe('EK_CERT_UNTRUSTED');
  });

  it('refuses a certificate from a CA that is not trusted', async () => {
    for (const kind of ['rsa', 'ecc'] as const) {
      expect(
        await asyncAttestationErrorCode(() =>
          verifyEkCertificate({ certificate: b.certs[kind], ekPublic: b.eks[kind], trustedCas: a.cas }),
        ),
      ).toBe('EK_CERT_UNTRUSTED');
    }
    // Another manufacturer's intermediate offered as an intermediate does not help either.
    expect(
      await asyncAttestationErrorCode(() =>
        verifyEkCertificate({
          certificate: b.certs.rsa,
          ekPublic: b.eks.rsa,
          trustedCas: [a.cas[0]!],
          intermediates: [b.cas[1]!],
        }),
      ),
    ).toBe('EK_CERT_UNTRUSTED');
  });

  it('refuses a genuine certificate presented with the EK public of another TPM', async () => {
    for (const kind of ['rsa', 'ecc'] as const) {
      expect(
        await asyncAttestationErrorCode(() =>
          verifyEkCertificate({ certificate: a.certs[kind], ekPublic: b.eks[kind], trustedCas: a.cas }),
        ),
      ).toBe('EK_CERT_KEY_MISMATCH');
    }
    expect(
      await asyncAttestationErrorCode(() =>
        verifyEkCertificate({ certificate: a.certs.rsa, ekPublic: a.eks.ecc, trustedCas: a.cas }),
      ),
    ).toBe('EK_CERT_KEY_MISMATCH');
  });

  it('refuses a corrupted certificate', async () => {
    const verifyCert = (certificate: Buffer) => () =>
      verifyEkCertificate({ certificate, ekPublic: a.eks.rsa, trustedCas: a.cas });
    const der = a.certs.rsa.subarray(0, derTotalLength(a.certs.rsa));
    // Last byte of the signature.
    expect(await asyncAttestationErrorCode(verifyCert(flip(der, der.length - 1)))).toBe('EK_CERT_UNTRUSTED');
    // A byte inside the certified RSA modulus (to-be-signed part): the signature no longer matches.
    const modulusAt = der.indexOf(a.eks.rsa.rsa!.modulus.subarray(0, 16));
    expect(modulusAt).toBeGreaterThan(0);
    expect(await asyncAttestationErrorCode(verifyCert(flip(der, modulusAt + 100)))).toBe('EK_CERT_UNTRUSTED');
    expect(await asyncAttestationErrorCode(verifyCert(der.subarray(0, der.length - 40)))).toBe(
      'EK_CERT_MALFORMED',
    );
    expect(await asyncAttestationErrorCode(verifyCert(Buffer.from('not a certificate')))).toBe(
      'EK_CERT_MALFORMED',
    );
  });

  it('refuses at a time outside the validity of the certificate or its CA', async () => {
    const certificate = new X509Certificate(a.certs.ecc);
    const input = { certificate: a.certs.ecc, ekPublic: a.eks.ecc, trustedCas: a.cas };
    const afterExpiry = new Date(certificate.notAfter.getTime() + 24 * 3600 * 1000);
    expect(await asyncAttestationErrorCode(() => verifyEkCertificate({ ...input, now: afterExpiry }))).toBe(
      'EK_CERT_EXPIRED',
    );
    const beforeIssue = new Date(certificate.notBefore.getTime() - 24 * 3600 * 1000);
    expect(await asyncAttestationErrorCode(() => verifyEkCertificate({ ...input, now: beforeIssue }))).toBe(
      'EK_CERT_EXPIRED',
    );
  });

  describe('extensions of certificates issued by the trusted CA', () => {
    // Issue test certificates with the local CA's own intermediate key, for the EK of TPM a.
    async function issue(extensions: Extension[]): Promise<Buffer> {
      const issuer = new X509Certificate(a.cas[1]!);
      const pem = await readFile(join(a.tpm.ca.dir, 'signkey.pem'), 'utf8');
      const pkcs8 = createPrivateKey(pem.slice(pem.indexOf('-----BEGIN'))).export({
        type: 'pkcs8',
        format: 'der',
      });
      const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
      const spki = publicKeyObject(a.eks.rsa).export({ type: 'spki', format: 'der' });
      const certificate = await X509CertificateGenerator.create({
        serialNumber: '7e57',
        subject: 'CN=test EK',
        issuer: issuer.subjectName,
        notBefore: new Date(Date.now() - 3600_000),
        notAfter: new Date(Date.now() + 3600_000),
        publicKey: spki,
        signingKey,
        signingAlgorithm: algorithm,
        extensions,
      });
      return Buffer.from(certificate.rawData);
    }
    const ekExtensions = () => [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.keyEncipherment, true),
      new ExtendedKeyUsageExtension(['2.23.133.8.1']),
    ];
    const verifyIssued = async (extensions: Extension[]) => {
      const certificate = await issue(extensions);
      return asyncAttestationErrorCode(() =>
        verifyEkCertificate({ certificate, ekPublic: a.eks.rsa, trustedCas: a.cas }),
      );
    };
    const unknown = (critical: boolean) =>
      new Extension('1.3.6.1.4.1.55555.1', critical, new Uint8Array([0x05, 0x00]));

    it('accepts an unknown extension that is not critical, refuses one that is', async () => {
      const certificate = await issue([...ekExtensions(), unknown(false)]);
      await expect(
        verifyEkCertificate({ certificate, ekPublic: a.eks.rsa, trustedCas: a.cas }),
      ).resolves.toMatchObject({
        serialNumber: '7e57',
      });
      expect(await verifyIssued([...ekExtensions(), unknown(true)])).toBe('EK_CERT_UNTRUSTED');
    });

    it('refuses a CA certificate, a certificate for another purpose, or one whose key usage does not fit the EK', async () => {
      expect(
        await verifyIssued([
          new BasicConstraintsExtension(true, undefined, true),
          ...ekExtensions().slice(1),
        ]),
      ).toBe('EK_CERT_UNTRUSTED');
      expect(
        await verifyIssued([
          ...ekExtensions().slice(0, 2),
          new ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.2']),
        ]),
      ).toBe('EK_CERT_UNTRUSTED');
      expect(
        await verifyIssued([
          ekExtensions()[0]!,
          new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
          ekExtensions()[2]!,
        ]),
      ).toBe('EK_CERT_UNTRUSTED');
    });
  });
});

function flip(bytes: Buffer, offset: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset]! ^= 0x01;
  return copy;
}

function derTotalLength(der: Buffer): number {
  // swtpm's certificates are under 64 KiB: 30 82 hi lo.
  return 4 + der.readUInt16BE(2);
}
