import {
  bytesOf,
  parseTpm2bPublic as readTpm2bPublic,
  parseTpmsAttest as readTpmsAttest,
  parseTpmtPublic as readTpmtPublic,
  parseTpmtSignatureEcdsa as readTpmtSignatureEcdsa,
  publicKeyObject as wirePublicKeyObject,
  tpmObjectName as wireTpmObjectName,
  TpmWireError,
  type TpmEcdsaSignature,
  type TpmPublic,
  type TpmsAttest,
} from '#otter/tpm-wire';
import type { KeyObject } from 'node:crypto';
import { AttestationError, type AttestationErrorCode } from './attestation-error.js';

/**
 * The TPM wire format as this verifier sees it: the one parser in `#otter/tpm-wire` (the agent uses the same),
 * with its TpmWireError rethrown as an AttestationError of the same code, so that everything this library
 * throws for bad input is an AttestationError. What cannot throw is re-exported as it is.
 */
export {
  ecdsaSignatureToDer,
  eccCurve,
  hex16,
  leftPad,
  MAX_DIGEST_BYTES,
  TPM_ALG,
  TPM_ECC_CURVE,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_CERTIFY,
  TPM_ST_ATTEST_QUOTE,
  tpmHash,
} from '#otter/tpm-wire';
export type { HashName, PcrBankSelection, TpmEcdsaSignature, TpmPublic, TpmsAttest } from '#otter/tpm-wire';

/** Runs a wire-library call, turning its TpmWireError into the AttestationError with the same code. */
export function fromWire<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    // The wire codes are a subset of this library's: the assignment below is what the compiler checks.
    if (error instanceof TpmWireError) throw new AttestationError(error.code, error.message);
    throw error;
  }
}

/** Bytes as a device sends them: a Buffer or any Uint8Array. Anything else is refused with `code`. */
export function asBytes(input: unknown, code: AttestationErrorCode, what: string): Buffer {
  const bytes = bytesOf(input);
  if (!bytes) throw new AttestationError(code, `${what} must be bytes`);
  return bytes;
}

/** TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC) of an RSA or ECC key; see `#otter/tpm-wire`. */
export function parseTpm2bPublic(bytes: Uint8Array): TpmPublic {
  return fromWire(() => readTpm2bPublic(bytes));
}

/** A bare TPMT_PUBLIC (no size prefix). */
export function parseTpmtPublic(bytes: Uint8Array): TpmPublic {
  return fromWire(() => readTpmtPublic(bytes));
}

/** The TPM name of an object: u16 nameAlg ‖ H_nameAlg(TPMT_PUBLIC). */
export function tpmObjectName(key: TpmPublic): Buffer {
  return fromWire(() => wireTpmObjectName(key));
}

/** The node:crypto public key of a parsed TPM key (ECC P-256 / P-384 on the curve, RSA of 2048 bits or more). */
export function publicKeyObject(key: TpmPublic): KeyObject {
  return fromWire(() => wirePublicKeyObject(key));
}

/** A TPMS_ATTEST of a quote or a certify; the magic is returned, not checked. */
export function parseTpmsAttest(bytes: Uint8Array): TpmsAttest {
  return fromWire(() => readTpmsAttest(bytes));
}

/** An ECDSA TPMT_SIGNATURE; another algorithm is TPM_SIGNATURE_UNSUPPORTED. */
export function parseTpmtSignatureEcdsa(bytes: Uint8Array): TpmEcdsaSignature {
  return fromWire(() => readTpmtSignatureEcdsa(bytes));
}
