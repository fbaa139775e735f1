import { timingSafeEqual, type KeyObject } from 'node:crypto';
import { AttestationError } from './attestation-error.js';
import {
  attestationKeyObject,
  attestHeader,
  rewrap,
  verifyAttestSignature,
  type AttestationKeyInput,
} from './signed-attest.js';
import {
  asBytes,
  hex16,
  parseTpmsAttest,
  publicKeyObject,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_CERTIFY,
  tpmObjectName,
  type TpmPublic,
  type TpmsAttest,
} from './tpm-wire.js';

export interface VerifyCertifyInput {
  akPublic: AttestationKeyInput;
  /** The TPMS_ATTEST bytes the TPM signed (`tpm2_certify -o`). */
  attest: Uint8Array;
  /** The TPMT_SIGNATURE (`tpm2_certify -s`, tss format). */
  signature: Uint8Array;
  /** The public area of the key the device claims was certified. */
  certifiedPublic: TpmPublic;
  /**
   * The qualifying data the certify must carry, when the caller chose it. tpm2-tools 5.4's `tpm2_certify` takes
   * none and always sends the fixed 4 bytes 00 ff 55 aa, so a certify made with it is not fresh: bind it to a
   * fresh quote or challenge instead (or have the agent call TPM2_Certify with a nonce and pass it here).
   */
  expectedExtraData?: Uint8Array;
}

/**
 * Verifies a TPM2_Certify by the attestation key: the structure is a certify (0x8017), signed by the AK, and the
 * certified object's name equals tpmObjectName(certifiedPublic) — so `certifiedPublic` is the public area of a
 * key loaded in the same TPM as the AK. Returns that key as a KeyObject. Key properties (fixedTPM, sign, ...)
 * are the caller's to check with checkDeviceKey: the name binds every attribute, so checking the parsed public
 * is checking the TPM's object.
 */
export function verifyCertify(input: VerifyCertifyInput): KeyObject {
  const attest = asBytes(input.attest, 'CERTIFY_MALFORMED', 'attest');
  const certified = input.certifiedPublic;
  if (typeof certified !== 'object' || certified === null || !Buffer.isBuffer(certified.publicArea)) {
    throw new AttestationError('CERTIFY_MALFORMED', 'certifiedPublic must be a parsed TPM public key');
  }
  const expectedExtraData =
    input.expectedExtraData === undefined
      ? undefined
      : asBytes(input.expectedExtraData, 'CERTIFY_MALFORMED', 'expected extra data');
  const key = attestationKeyObject(input.akPublic);

  const header = attestHeader(attest, 'CERTIFY_MALFORMED');
  if (header.magic !== TPM_GENERATED_VALUE) {
    throw new AttestationError('CERTIFY_MALFORMED', 'attest does not start with TPM_GENERATED_VALUE');
  }
  if (header.type !== TPM_ST_ATTEST_CERTIFY) {
    throw new AttestationError(
      'CERTIFY_WRONG_TYPE',
      `attest type ${hex16(header.type)} is not a certify (0x8017)`,
    );
  }
  let parsed: TpmsAttest;
  try {
    parsed = parseTpmsAttest(attest);
  } catch (error) {
    throw rewrap(error, 'CERTIFY_MALFORMED');
  }
  const body = parsed.certify;
  if (!body) throw new AttestationError('CERTIFY_MALFORMED', 'attest has no certify body');

  verifyAttestSignature(key, attest, input.signature, {
    malformed: 'CERTIFY_MALFORMED',
    invalid: 'CERTIFY_SIGNATURE_INVALID',
  });

  if (
    expectedExtraData &&
    (parsed.extraData.length !== expectedExtraData.length ||
      !timingSafeEqual(parsed.extraData, expectedExtraData))
  ) {
    throw new AttestationError('CERTIFY_NONCE_MISMATCH', 'certify was not made for this qualifying data');
  }

  let expectedName: Buffer;
  try {
    expectedName = tpmObjectName(certified);
  } catch (error) {
    throw rewrap(error, 'CERTIFY_MALFORMED');
  }
  if (body.name.length !== expectedName.length || !timingSafeEqual(body.name, expectedName)) {
    throw new AttestationError('CERTIFY_NAME_MISMATCH', 'the certified object is not the given public key');
  }
  try {
    return publicKeyObject(certified);
  } catch (error) {
    throw rewrap(error, 'CERTIFY_MALFORMED');
  }
}
