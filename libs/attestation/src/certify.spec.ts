import { randomBytes, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { ecdsaSignatureToDer } from '#otter/tpm-wire';
import {
  AttestationError,
  checkAttestationKey,
  checkDeviceKey,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtPublic,
  parseTpmtSignatureEcdsa,
  publicKeyObject,
  verifyCertify,
  type TpmPublic,
} from './index.js';
import { attestationErrorCode, TEST_HANDLES, Tpm2Tools } from './testing.js';

const AK = '0x81010020';
const DEVICE_KEY = '0x81010030';
const OTHER_DEVICE_KEY = '0x81010031';
const DUPLICABLE_KEY = '0x81010032';
const AK_WITHOUT_NODA = '0x81010022';

describe('verifyCertify and key checks against a real TPM (swtpm)', () => {
  let tpm: SoftwareTpm;
  let tools: Tpm2Tools;
  let ak: TpmPublic;
  let deviceKey: TpmPublic;
  let otherDeviceKey: TpmPublic;

  beforeAll(async () => {
    tpm = await startSoftwareTpm();
    tools = await Tpm2Tools.create(tpm.tcti);
    await tools.createEndorsementPrimary();
    ak = parseTpm2bPublic(await tools.createKey('ak', AK));
    deviceKey = parseTpm2bPublic(await tools.createKey('device', DEVICE_KEY));
    otherDeviceKey = parseTpm2bPublic(await tools.createKey('device', OTHER_DEVICE_KEY));
  });

  afterAll(async () => {
    await tpm?.stop();
    await tools?.cleanup();
  });

  it('verifies a certify of the device key by the AK and returns a key that verifies the device key’s signatures', async () => {
    const { attest, signature } = await tools.certify(DEVICE_KEY, AK);
    const key = verifyCertify({ akPublic: ak, attest, signature, certifiedPublic: deviceKey });
    expect(key.export({ format: 'jwk' })).toEqual(publicKeyObject(deviceKey).export({ format: 'jwk' }));

    // tpm2-tools 5.4 always qualifies a certify with 00 ff 55 aa: no freshness from tpm2_certify.
    expect(parseTpmsAttest(attest).extraData.toString('hex')).toBe('00ff55aa');
    expect(
      verifyCertify({
        akPublic: ak,
        attest,
        signature,
        certifiedPublic: deviceKey,
        expectedExtraData: Buffer.from('00ff55aa', 'hex'),
      }),
    ).toBeDefined();
    expect(
      attestationErrorCode(() =>
        verifyCertify({
          akPublic: ak,
          attest,
          signature,
          certifiedPublic: deviceKey,
          expectedExtraData: randomBytes(16),
        }),
      ),
    ).toBe('CERTIFY_NONCE_MISMATCH');

    const message = Buffer.from('otter device request');
    const tpmSignature = parseTpmtSignatureEcdsa(await tools.sign(DEVICE_KEY, message));
    expect(verify('sha256', message, { key, dsaEncoding: 'der' }, ecdsaSignatureToDer(tpmSignature))).toBe(
      true,
    );
  });

  it('refuses a certify of a different key presented for the device key', async () => {
    const { attest, signature } = await tools.certify(OTHER_DEVICE_KEY, AK);
    expect(verifyCertify({ akPublic: ak, attest, signature, certifiedPublic: otherDeviceKey })).toBeDefined();
    expect(
      attestationErrorCode(() =>
        verifyCertify({ akPublic: ak, attest, signature, certifiedPublic: deviceKey }),
      ),
    ).toBe('CERTIFY_NAME_MISMATCH');
  });

  it('refuses a certify that was changed, signed by another key, or is a quote', async () => {
    const { attest, signature } = await tools.certify(DEVICE_KEY, AK);
    const base = { akPublic: ak, certifiedPublic: deviceKey };
    // Rewrite the certified name to the other key's: the signature no longer covers it.
    const parsed = parseTpmsAttest(attest);
    const renamed = Buffer.from(attest);
    const nameAt = renamed.indexOf(parsed.certify!.name);
    expect(nameAt).toBeGreaterThan(0);
    publicNameOf(otherDeviceKey).copy(renamed, nameAt);
    expect(
      attestationErrorCode(() =>
        verifyCertify({ ...base, attest: renamed, signature, certifiedPublic: otherDeviceKey }),
      ),
    ).toBe('CERTIFY_SIGNATURE_INVALID');
    // The device key (unrestricted) signing the certify structure itself.
    const forged = await tools.sign(DEVICE_KEY, attest);
    expect(attestationErrorCode(() => verifyCertify({ ...base, attest, signature: forged }))).toBe(
      'CERTIFY_SIGNATURE_INVALID',
    );
    expect(
      attestationErrorCode(() => verifyCertify({ ...base, akPublic: deviceKey, attest, signature: forged })),
    ).toBe('AK_REJECTED');
    const quote = await tools.quote(AK, 'sha256:0', randomBytes(16));
    expect(attestationErrorCode(() => verifyCertify({ ...base, ...quote }))).toBe('CERTIFY_WRONG_TYPE');
  });

  it('checks attestation and device key properties', async () => {
    expect(checkAttestationKey(ak)).toMatchObject({ noDA: true });
    expect(checkDeviceKey(deviceKey)).toMatchObject({ noDA: true });
    expect(attestationErrorCode(() => checkAttestationKey(deviceKey))).toBe('AK_REJECTED');
    expect(attestationErrorCode(() => checkDeviceKey(ak))).toBe('DEVICE_KEY_REJECTED');

    // A real AK without noDA still passes, and says so.
    const daAk = parseTpm2bPublic(
      await tools.createKey(
        'ak',
        AK_WITHOUT_NODA,
        'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign',
      ),
    );
    expect(checkAttestationKey(daAk).noDA).toBe(false);

    // A real duplicable key (its private part can leave the TPM): refused as either.
    const duplicable = parseTpm2bPublic(
      await tools.createKey('device', DUPLICABLE_KEY, 'sensitivedataorigin|userwithauth|sign|noda'),
    );
    expect(violations(() => checkDeviceKey(duplicable))).toEqual(['not fixedTPM', 'not fixedParent']);

    // The EK (P-384 decryption key) is no AK.
    const ek = parseTpm2bPublic(await tools.readPublic(TEST_HANDLES.ekEccP384));
    expect(violations(() => checkAttestationKey(ek))).toEqual(
      expect.arrayContaining(['not ECC P-256', 'sign is not set', 'decrypt is set']),
    );

    // An AK whose sensitive part was imported (sensitiveDataOrigin clear): attribute bit 5 cleared.
    const imported = Buffer.from(ak.publicArea);
    imported.writeUInt32BE(imported.readUInt32BE(4) & ~(1 << 5), 4);
    expect(violations(() => checkAttestationKey(parseTpmtPublic(imported)))).toEqual([
      'not sensitiveDataOrigin (the key was imported)',
    ]);
  });
});

function publicNameOf(key: TpmPublic): Buffer {
  return checkDeviceKey(key).name;
}

function violations(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof AttestationError) return error.details?.violations as string[];
    throw error;
  }
  throw new Error('no violation reported');
}
