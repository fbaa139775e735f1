import { TpmWireError } from './tpm-wire-error.js';
import { hex16, TPM_ALG } from './tpm-constants.js';
import { asBytes, TpmReader } from './tpm-reader.js';

/** An ECDSA TPMT_SIGNATURE: r and s as the TPM wrote them (big-endian, usually the full field size). */
export interface TpmEcdsaSignature {
  hashAlg: number;
  r: Buffer;
  s: Buffer;
}

/** P-521 coordinates are 66 bytes; nothing this library verifies is larger. */
const MAX_SCALAR_BYTES = 66;

/**
 * Parses a TPMT_SIGNATURE (`tpm2_quote -s` / `tpm2_sign -o` in the default `tss` format): u16 sigAlg, which
 * must be ECDSA (0x0018) — anything else is TPM_SIGNATURE_UNSUPPORTED — then u16 hash, TPM2B r, TPM2B s.
 * The whole input must be that one structure.
 */
export function parseTpmtSignatureEcdsa(bytes: Uint8Array): TpmEcdsaSignature {
  const input = asBytes(bytes, 'TPM_SIGNATURE_MALFORMED', 'TPMT_SIGNATURE');
  const reader = new TpmReader(input, 'TPM_SIGNATURE_MALFORMED', 'TPMT_SIGNATURE');
  const sigAlg = reader.u16('sigAlg');
  if (sigAlg !== TPM_ALG.ECDSA) {
    throw new TpmWireError('TPM_SIGNATURE_UNSUPPORTED', `signature algorithm ${hex16(sigAlg)} is not ECDSA`);
  }
  const hashAlg = reader.u16('hash');
  const r = reader.tpm2b('r', MAX_SCALAR_BYTES);
  const s = reader.tpm2b('s', MAX_SCALAR_BYTES);
  reader.end();
  return { hashAlg, r, s };
}

/** DER (the ASN.1 `SEQUENCE { r INTEGER, s INTEGER }` node:crypto verifies by default) of an ECDSA signature. */
export function ecdsaSignatureToDer(signature: { r: Uint8Array; s: Uint8Array }): Buffer {
  const body = Buffer.concat([derInteger(signature.r), derInteger(signature.s)]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

function derInteger(value: Uint8Array): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  let magnitude = Buffer.from(value.subarray(start));
  if (magnitude.length === 0) magnitude = Buffer.from([0]);
  if (magnitude[0]! & 0x80) magnitude = Buffer.concat([Buffer.from([0]), magnitude]);
  return Buffer.concat([Buffer.from([0x02]), derLength(magnitude.length), magnitude]);
}

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length < 0x100) return Buffer.from([0x81, length]);
  return Buffer.from([0x82, length >> 8, length & 0xff]);
}

/**
 * ECDSA r ‖ s, each left-padded to `componentBytes` (32 for P-256): JOSE's (and node's `ieee-p1363`)
 * signature encoding. A scalar longer than that, leading zeros aside, is TPM_SIGNATURE_MALFORMED.
 */
export function ecdsaSignatureToRawRs(
  signature: { r: Uint8Array; s: Uint8Array },
  componentBytes: number,
): Buffer {
  return Buffer.concat([fixedWidth(signature.r, componentBytes), fixedWidth(signature.s, componentBytes)]);
}

function fixedWidth(value: Uint8Array, size: number): Buffer {
  let start = 0;
  while (start < value.length && value[start] === 0) start++;
  const magnitude = Buffer.from(value.subarray(start));
  if (magnitude.length > size) {
    throw new TpmWireError(
      'TPM_SIGNATURE_MALFORMED',
      `ECDSA scalar of ${magnitude.length} bytes exceeds ${size}`,
    );
  }
  return Buffer.concat([Buffer.alloc(size - magnitude.length), magnitude]);
}
