import { TPM_ALG } from './tpm-constants.js';
import type { TpmPublic, TpmScheme } from './tpm-public.js';

export { SWTPM_FIXTURES } from './swtpm-fixtures.js';

/**
 * For tests: the TPM2B_PUBLIC of a parsed public area, field by field as TPM 2.0 Part 2 lays it out. Parse a
 * real key, change one field (an attribute bit, the policy, the RSA exponent field) and encode it again, to
 * build exactly the public area an attacker would send. encodeTpm2bPublic(parseTpm2bPublic(b)) equals b.
 */
export function encodeTpm2bPublic(key: TpmPublic): Buffer {
  const tpmt = encodeTpmtPublic(key);
  return Buffer.concat([u16(tpmt.length), tpmt]);
}

export function encodeTpmtPublic(key: TpmPublic): Buffer {
  const parts: Buffer[] = [
    u16(key.type === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC),
    u16(key.nameAlg),
    u32(key.objectAttributes.value),
    tpm2b(key.authPolicy),
    u16(key.symmetric.algorithm),
  ];
  if (key.symmetric.algorithm !== TPM_ALG.NULL) {
    parts.push(u16(key.symmetric.keyBits ?? 0), u16(key.symmetric.mode ?? 0));
  }
  parts.push(scheme(key.scheme));
  if (key.rsa) {
    parts.push(u16(key.rsa.keyBits), u32(key.rsa.exponentField), tpm2b(key.rsa.modulus));
  } else if (key.ecc) {
    parts.push(u16(key.ecc.curveId), scheme(key.ecc.kdf), tpm2b(key.ecc.x), tpm2b(key.ecc.y));
  }
  return Buffer.concat(parts);
}

function scheme(s: TpmScheme): Buffer {
  if (s.scheme === TPM_ALG.NULL || s.scheme === TPM_ALG.RSAES) return u16(s.scheme);
  if (s.scheme === TPM_ALG.ECDAA)
    return Buffer.concat([u16(s.scheme), u16(s.hashAlg ?? 0), u16(s.count ?? 0)]);
  return Buffer.concat([u16(s.scheme), u16(s.hashAlg ?? 0)]);
}

function tpm2b(bytes: Buffer): Buffer {
  return Buffer.concat([u16(bytes.length), bytes]);
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}
