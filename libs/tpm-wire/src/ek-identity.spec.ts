import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ekIssuerSerialSha256, ekKeySha256, normalSerial } from './ek-identity.js';
import { ekPolicyDigests } from './ek-templates.js';
import { encodeTpm2bPublic, SWTPM_FIXTURES } from './testing.js';
import { parseTpm2bPublic, type TpmPublic } from './tpm-public.js';

const parsed = (name: keyof typeof SWTPM_FIXTURES): TpmPublic =>
  parseTpm2bPublic(Buffer.from(SWTPM_FIXTURES[name], 'hex'));

function altered(name: keyof typeof SWTPM_FIXTURES, change: (key: TpmPublic) => void): TpmPublic {
  const key = structuredClone(parsed(name));
  change(key);
  return parseTpm2bPublic(encodeTpm2bPublic(key));
}

describe('EK identity', () => {
  it("ekKeySha256 is the SHA-256 of the EK certificate's SubjectPublicKeyInfo (swtpm's RSA and P-384 EKs)", () => {
    for (const [ek, certificate] of [
      ['ekL1', 'ekL1Certificate'],
      ['ekH3', 'ekH3Certificate'],
    ] as const) {
      const der = Buffer.from(SWTPM_FIXTURES[certificate], 'hex');
      const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
      // The certificate carries exactly these SubjectPublicKeyInfo bytes.
      expect(der.includes(spki)).toBe(true);
      expect(ekKeySha256(parsed(ek))).toBe(createHash('sha256').update(spki).digest('hex'));
    }
  });

  it('ekKeySha256 ignores every byte of the public area but the key; different keys differ', () => {
    const original = ekKeySha256(parsed('ekL1'));
    const variants = [
      altered('ekL1', (k) => (k.rsa!.exponentField = 65537)),
      altered('ekL1', (k) => (k.authPolicy = ekPolicyDigests('sha256').b)),
      altered('ekL1', (k) => (k.objectAttributes.value |= 1 << 3)),
      altered('ekL1', (k) => (k.nameAlg = 0x000c)),
    ];
    for (const variant of variants) {
      expect(variant.publicArea).not.toEqual(parsed('ekL1').publicArea);
      expect(ekKeySha256(variant)).toBe(original);
    }
    expect(
      new Set(['ekL1', 'ekL2', 'ekH1', 'ekH2', 'ekH3'].map((n) => ekKeySha256(parsed(n as 'ekL1')))),
    ).toHaveProperty('size', 5);
  });

  it('ekIssuerSerialSha256 names a certificate by issuer and serial: one serial under two issuers is two', () => {
    const a = ekIssuerSerialSha256('CN=swtpm-localca', '02');
    expect(ekIssuerSerialSha256('CN=swtpm-localca', '2')).toBe(a);
    expect(ekIssuerSerialSha256('CN=swtpm-localca', '00:02')).toBe(a);
    expect(ekIssuerSerialSha256('CN=Other Manufacturer CA', '02')).not.toBe(a);
    expect(ekIssuerSerialSha256('CN=swtpm-localca', '03')).not.toBe(a);
    // The separator keeps "issuer ‖ serial" unambiguous.
    expect(ekIssuerSerialSha256('CN=a1', '2')).not.toBe(ekIssuerSerialSha256('CN=a', '12'));
    expect(normalSerial('00:0A:bC')).toBe('abc');
    expect(normalSerial('0000')).toBe('0');
  });
});
