import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { TPM_ALG, TPM_ECC_CURVE } from '#otter/tpm-wire';
import { makeCredential, parseTpm2bPublic, tpmObjectName, type TpmPublic } from './index.js';
import { attestationErrorCode, TEST_HANDLES, Tpm2Tools } from './testing.js';

const AK = '0x81010020';
const DEVICE_KEY = '0x81010030';

describe('makeCredential, activated by a real TPM (swtpm)', () => {
  let tpm: SoftwareTpm;
  let tools: Tpm2Tools;
  let ak: TpmPublic;
  let deviceKey: TpmPublic;
  let ekRsa: TpmPublic;
  let ekEcc: TpmPublic;

  beforeAll(async () => {
    tpm = await startSoftwareTpm();
    tools = await Tpm2Tools.create(tpm.tcti);
    await tools.createEndorsementPrimary();
    ak = parseTpm2bPublic(await tools.createKey('ak', AK));
    deviceKey = parseTpm2bPublic(await tools.createKey('device', DEVICE_KEY));
    ekRsa = parseTpm2bPublic(await tools.readPublic(TEST_HANDLES.ekRsa));
    ekEcc = parseTpm2bPublic(await tools.readPublic(TEST_HANDLES.ekEccP384));
  });

  afterAll(async () => {
    await tpm?.stop();
    await tools?.cleanup();
  });

  const EKS = [
    {
      label: 'RSA 2048 EK',
      handle: TEST_HANDLES.ekRsa,
      ek: () => ekRsa,
      policySession: true,
      secretBytes: 32,
    },
    {
      label: 'ECC P-384 EK',
      handle: TEST_HANDLES.ekEccP384,
      ek: () => ekEcc,
      policySession: false,
      secretBytes: 48,
    },
  ];

  it('reads the EKs the certificates are for: RSA 2048/SHA-256/AES-128-CFB and P-384/SHA-384/AES-256-CFB', () => {
    expect(ekRsa).toMatchObject({
      type: 'rsa',
      nameAlg: TPM_ALG.SHA256,
      rsa: { keyBits: 2048, exponent: 65537 },
    });
    expect(ekRsa.symmetric).toEqual({ algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });
    expect(ekEcc).toMatchObject({
      type: 'ecc',
      nameAlg: TPM_ALG.SHA384,
      ecc: { curveId: TPM_ECC_CURVE.NIST_P384 },
    });
    expect(ekEcc.symmetric).toEqual({ algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB });
    expect(ekRsa.objectAttributes).toMatchObject({
      restricted: true,
      decrypt: true,
      sign: false,
      fixedTPM: true,
    });
  });

  for (const { label, handle, ek, policySession, secretBytes } of EKS) {
    it(`${label}: TPM2_ActivateCredential recovers the secret, up to the nameAlg digest size`, async () => {
      for (const secret of [randomBytes(16), randomBytes(secretBytes)]) {
        const made = makeCredential({ ekPublic: ek(), akName: tpmObjectName(ak), secret });
        expect(made.credentialBlob.subarray(0, 8).toString('hex')).toBe('badcc0de00000001');
        expect(made.credentialBlob.subarray(8)).toEqual(Buffer.concat([made.idObject, made.encryptedSecret]));
        const recovered = await tools.activateCredential(AK, handle, made.credentialBlob, policySession);
        expect(recovered).toEqual(secret);
      }
    });

    it(`${label}: the TPM refuses a credential made for another key's name, a tampered one, or one for the other EK`, async () => {
      const secret = randomBytes(16);
      const refusal = (blob: Buffer): Promise<string> =>
        tools.activateCredential(AK, handle, blob, policySession).then(
          () => 'activated',
          (error: { stderr?: string }) => String(error.stderr),
        );
      // Bound to the device key (same TPM, loaded too) but activated with the AK: the integrity HMAC covers the name.
      const forDevice = makeCredential({ ekPublic: ek(), akName: tpmObjectName(deviceKey), secret });
      expect(await refusal(forDevice.credentialBlob)).toMatch(/integrity check failed/);

      const tampered = Buffer.from(
        makeCredential({ ekPublic: ek(), akName: tpmObjectName(ak), secret }).credentialBlob,
      );
      tampered[8 + 2 + 2 + 40]! ^= 0x01; // inside encIdentity, after the integrity HMAC
      expect(await refusal(tampered)).toMatch(/integrity check failed/);

      const otherEk = ek() === ekRsa ? ekEcc : ekRsa;
      const wrongEk = makeCredential({ ekPublic: otherEk, akName: tpmObjectName(ak), secret });
      // The other EK's encrypted seed does not even fit this EK (parameter 2 is the encrypted secret).
      expect(await refusal(wrongEk.credentialBlob)).toMatch(/parameter\(2\)/);

      // The same TPM still activates a good one afterwards (the failures were refusals, not a broken TPM).
      const good = makeCredential({ ekPublic: ek(), akName: tpmObjectName(ak), secret });
      expect(await tools.activateCredential(AK, handle, good.credentialBlob, policySession)).toEqual(secret);
    });
  }

  it('refuses inputs it cannot make a credential for', () => {
    const akName = tpmObjectName(ak);
    expect(
      attestationErrorCode(() =>
        makeCredential({ ekPublic: ekRsa, akName: akName.subarray(1), secret: randomBytes(16) }),
      ),
    ).toBe('CREDENTIAL_INPUT_INVALID');
    expect(
      attestationErrorCode(() => makeCredential({ ekPublic: ekRsa, akName, secret: randomBytes(33) })),
    ).toBe('CREDENTIAL_INPUT_INVALID');
    expect(
      attestationErrorCode(() => makeCredential({ ekPublic: ekRsa, akName, secret: Buffer.alloc(0) })),
    ).toBe('CREDENTIAL_INPUT_INVALID');
    // A signing key is no EK: it cannot decrypt a seed.
    expect(
      attestationErrorCode(() => makeCredential({ ekPublic: ak, akName, secret: randomBytes(16) })),
    ).toBe('CREDENTIAL_EK_UNSUPPORTED');
    expect(
      attestationErrorCode(() =>
        makeCredential({
          ekPublic: ekRsa,
          akName: 'not bytes' as unknown as Buffer,
          secret: randomBytes(16),
        }),
      ),
    ).toBe('CREDENTIAL_INPUT_INVALID');
  });
});
