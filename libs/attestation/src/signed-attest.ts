import { KeyObject, verify } from 'node:crypto';
import { AttestationError, type AttestationErrorCode } from './attestation-error.js';
import { checkAttestationKey } from './key-policy.js';
import {
  asBytes,
  ecdsaSignatureToDer,
  parseTpmtSignatureEcdsa,
  publicKeyObject,
  TPM_ALG,
  type TpmPublic,
} from './tpm-wire.js';

/**
 * The attestation key as the verifier holds it: the parsed TPM2B_PUBLIC from enrollment (checked with
 * checkAttestationKey on every use: only a restricted key's signature proves the TPM built the structure), or
 * a KeyObject the caller built from such a key after checking it (cheaper when cached). A KeyObject must be an
 * EC P-256 public key.
 */
export type AttestationKeyInput = TpmPublic | KeyObject;

export function attestationKeyObject(ak: AttestationKeyInput): KeyObject {
  if (ak instanceof KeyObject) {
    if (
      ak.type !== 'public' ||
      ak.asymmetricKeyType !== 'ec' ||
      ak.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw new AttestationError('AK_REJECTED', 'attestation key must be an EC P-256 public key');
    }
    return ak;
  }
  if (typeof ak !== 'object' || ak === null || !Buffer.isBuffer((ak as Partial<TpmPublic>).publicArea)) {
    throw new AttestationError(
      'AK_REJECTED',
      'attestation key must be a parsed TPM public key or a KeyObject',
    );
  }
  checkAttestationKey(ak);
  return publicKeyObject(ak);
}

/** The first 6 bytes of a TPMS_ATTEST: magic and type, read before anything else is trusted. */
export function attestHeader(
  attest: Buffer,
  malformed: AttestationErrorCode,
): { magic: number; type: number } {
  if (attest.length < 6) throw new AttestationError(malformed, 'attestation structure is truncated');
  return { magic: attest.readUInt32BE(0), type: attest.readUInt16BE(4) };
}

/**
 * Verifies an ECDSA-SHA256 TPMT_SIGNATURE over the exact attest bytes. A signature that cannot be parsed is
 * `malformed`; one with another algorithm or hash, or that does not verify, is `invalid`.
 */
export function verifyAttestSignature(
  key: KeyObject,
  attest: Buffer,
  signature: unknown,
  codes: { malformed: AttestationErrorCode; invalid: AttestationErrorCode },
): void {
  const bytes = asBytes(signature, codes.malformed, 'signature');
  let parsed;
  try {
    parsed = parseTpmtSignatureEcdsa(bytes);
  } catch (error) {
    if (error instanceof AttestationError && error.code === 'TPM_SIGNATURE_UNSUPPORTED') {
      throw new AttestationError(codes.invalid, error.reason);
    }
    throw rewrap(error, codes.malformed);
  }
  if (parsed.hashAlg !== TPM_ALG.SHA256) {
    throw new AttestationError(codes.invalid, 'signature hash is not SHA-256');
  }
  if (parsed.r.length > 32 || parsed.s.length > 32) {
    throw new AttestationError(codes.invalid, 'signature scalars are too long for P-256');
  }
  let ok: boolean;
  try {
    ok = verify('sha256', attest, { key, dsaEncoding: 'der' }, ecdsaSignatureToDer(parsed));
  } catch {
    ok = false;
  }
  if (!ok) throw new AttestationError(codes.invalid, 'signature does not verify with the attestation key');
}

/** Re-labels a parser's AttestationError with the caller's code, keeping its reason. */
export function rewrap(error: unknown, code: AttestationErrorCode): AttestationError {
  if (error instanceof AttestationError) return new AttestationError(code, error.reason, error.details);
  return new AttestationError(code, 'unreadable input');
}
