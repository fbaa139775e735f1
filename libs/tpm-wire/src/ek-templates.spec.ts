import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ekPolicyDigests, ekTemplateOf, TCG_EK_TEMPLATES } from './ek-templates.js';
import { encodeTpm2bPublic, SWTPM_FIXTURES } from './testing.js';
import { TPM_ALG } from './tpm-constants.js';
import { parseTpm2bPublic, type TpmPublic } from './tpm-public.js';
import { TpmWireError } from './tpm-wire-error.js';

const fixture = (name: keyof typeof SWTPM_FIXTURES): Buffer => Buffer.from(SWTPM_FIXTURES[name], 'hex');
const parsed = (name: keyof typeof SWTPM_FIXTURES): TpmPublic => parseTpm2bPublic(fixture(name));

/** The EK public area of `name` with `change` applied, as bytes a device could send, parsed back. */
function altered(name: keyof typeof SWTPM_FIXTURES, change: (key: TpmPublic) => void): TpmPublic {
  const key = structuredClone(parsed(name));
  change(key);
  return parseTpm2bPublic(encodeTpm2bPublic(key));
}

function refusal(key: TpmPublic): string {
  try {
    ekTemplateOf(key);
  } catch (error) {
    if (error instanceof TpmWireError && error.code === 'EK_TEMPLATE_MISMATCH') return error.message;
    throw error;
  }
  throw new Error('the public area was accepted as an EK template');
}

describe('TCG EK templates', () => {
  it('computes the EK policy digests the TCG EK Credential Profile lists', () => {
    expect(ekPolicyDigests('sha256').a.toString('hex')).toBe(
      '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa',
    );
    expect(ekPolicyDigests('sha256').b.toString('hex')).toBe(
      'ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0',
    );
    expect(ekPolicyDigests('sha384').a.toString('hex')).toBe(
      '8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db53',
    );
    expect(ekPolicyDigests('sha384').b.toString('hex')).toBe(
      'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12',
    );
  });

  it('recognises the EK a real TPM makes from each template, swtpm_setup EKs included', () => {
    expect(TCG_EK_TEMPLATES.map((t) => t.name)).toEqual(['L-1', 'L-2', 'H-1', 'H-2', 'H-3']);
    expect(ekTemplateOf(parsed('ekL1')).name).toBe('L-1');
    expect(ekTemplateOf(parsed('ekL2')).name).toBe('L-2');
    expect(ekTemplateOf(parsed('ekH1')).name).toBe('H-1');
    expect(ekTemplateOf(parsed('ekH2')).name).toBe('H-2');
    expect(ekTemplateOf(parsed('ekH3')).name).toBe('H-3');
    expect(parsed('ekL1').rsa).toMatchObject({ exponent: 65537, exponentField: 0 });
  });

  it('the test encoder writes back exactly the bytes it parsed', () => {
    for (const name of ['ekL1', 'ekL2', 'ekH1', 'ekH2', 'ekH3', 'ak'] as const) {
      expect(encodeTpm2bPublic(parsed(name))).toEqual(fixture(name));
    }
  });

  it('refuses the RSA exponent spelled out (65537 instead of 0), and any other exponent', () => {
    for (const exponentField of [65537, 3, 17]) {
      const key = altered('ekL1', (k) => (k.rsa!.exponentField = exponentField));
      expect(refusal(key)).toMatch(new RegExp(`template L-1 .*RSA exponent field is ${exponentField}`));
    }
  });

  it('refuses another authPolicy, including the other range policy without the other range attributes', () => {
    const random = altered('ekL1', (k) => (k.authPolicy = randomBytes(32)));
    expect(refusal(random)).toMatch(/authPolicy is not PolicyA_SHA256/);
    const empty = altered('ekH3', (k) => (k.authPolicy = Buffer.alloc(0)));
    expect(refusal(empty)).toMatch(/template H-3 .*authPolicy is not PolicyB_SHA384/);
    const policyB = altered('ekL1', (k) => (k.authPolicy = ekPolicyDigests('sha256').b));
    expect(refusal(policyB)).toMatch(/authPolicy is not PolicyA_SHA256|objectAttributes/);
  });

  it('refuses every single objectAttributes bit changed, reserved bits included', () => {
    for (const name of ['ekL1', 'ekL2', 'ekH1', 'ekH2', 'ekH3'] as const) {
      for (let bit = 0; bit < 32; bit++) {
        const key = altered(
          name,
          (k) => (k.objectAttributes.value = (k.objectAttributes.value ^ (1 << bit)) >>> 0),
        );
        // Toggling userWithAuth alone turns a low-range EK into a high-range shape with the wrong policy.
        expect(refusal(key), `${name} bit ${bit}`).toMatch(/objectAttributes is 0x[0-9a-f]{8}|authPolicy/);
      }
    }
  });

  it('refuses another nameAlg, symmetric cipher, scheme, kdf or a shortened unique field', () => {
    expect(refusal(altered('ekL1', (k) => (k.nameAlg = TPM_ALG.SHA384)))).toMatch(/nameAlg is 0x000c/);
    expect(refusal(altered('ekL1', (k) => (k.symmetric = { algorithm: TPM_ALG.NULL })))).toMatch(
      /symmetric is null, the template has AES-128-CFB/,
    );
    expect(
      refusal(
        altered('ekH3', (k) => (k.symmetric = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB })),
      ),
    ).toMatch(/symmetric is AES-128-CFB, the template has AES-256-CFB/);
    expect(
      refusal(altered('ekL1', (k) => (k.scheme = { scheme: TPM_ALG.OAEP, hashAlg: TPM_ALG.SHA256 }))),
    ).toMatch(/scheme is 0x0017/);
    expect(
      refusal(altered('ekL2', (k) => (k.ecc!.kdf = { scheme: 0x0020, hashAlg: TPM_ALG.SHA256 }))),
    ).toMatch(/kdf is 0x0020/);
    // A coordinate with a leading zero byte dropped is the same number to a lenient reader, not to the template.
    const stripped = altered('ekH3', (k) => (k.ecc!.y = k.ecc!.y.subarray(1)));
    expect(refusal(stripped)).toMatch(/unique y is 47 bytes, the template has 48 bytes/);
  });

  it('refuses keys of other sizes and keys that are not EKs', () => {
    expect(refusal(parsed('ak'))).toMatch(/template (L-2|H-2)/);
    const p521 = altered('ekH3', (k) => (k.ecc!.curveId = 0x0005));
    expect(refusal(p521)).toMatch(/must be RSA 2048, ECC NIST P-256 or ECC NIST P-384/);
  });

  it('the same key can be presented under two valid templates: the template alone does not identify a TPM', () => {
    const asH1 = altered('ekL1', (k) => {
      k.objectAttributes.value |= 1 << 6; // userWithAuth
      k.authPolicy = ekPolicyDigests('sha256').b;
    });
    expect(ekTemplateOf(asH1).name).toBe('H-1');
    expect(asH1.rsa!.modulus).toEqual(parsed('ekL1').rsa!.modulus);
    expect(asH1.publicArea).not.toEqual(parsed('ekL1').publicArea);
  });
});
