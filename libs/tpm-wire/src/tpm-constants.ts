/** TPM 2.0 algorithm identifiers (TPM_ALG_ID, Part 2 §6.3) and constants this library reads. */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  ECSCHNORR: 0x001c,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const;

export const TPM_ECC_CURVE = { NIST_P256: 0x0003, NIST_P384: 0x0004, NIST_P521: 0x0005 } as const;

export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_CERTIFY = 0x8017;
export const TPM_ST_ATTEST_QUOTE = 0x8018;

/** Largest TPMU_HA (SHA-512): the bound on digests, nonces (TPM2B_DATA) and the hash part of names. */
export const MAX_DIGEST_BYTES = 64;
/** TPM2B_NAME: a 2-byte algorithm and a digest (or a 4-byte handle). */
export const MAX_NAME_BYTES = 2 + MAX_DIGEST_BYTES;

export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

const HASHES: ReadonlyMap<number, { name: HashName; size: number }> = new Map([
  [TPM_ALG.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
]);

/** The node:crypto name and digest size of a TPM hash algorithm, or undefined for one this library does not use. */
export function tpmHash(alg: number): { name: HashName; size: number } | undefined {
  return HASHES.get(alg);
}

export interface EccCurveInfo {
  /** JOSE / JWK name. */
  jwk: 'P-256' | 'P-384';
  /** OpenSSL name, as node:crypto createECDH takes it. */
  openssl: 'prime256v1' | 'secp384r1';
  /** Coordinate size in bytes. */
  size: number;
}

const CURVES: ReadonlyMap<number, EccCurveInfo> = new Map([
  [TPM_ECC_CURVE.NIST_P256, { jwk: 'P-256', openssl: 'prime256v1', size: 32 }],
  [TPM_ECC_CURVE.NIST_P384, { jwk: 'P-384', openssl: 'secp384r1', size: 48 }],
]);

/** The curves this library builds keys for: NIST P-256 and P-384. */
export function eccCurve(curveId: number): EccCurveInfo | undefined {
  return CURVES.get(curveId);
}

export function hex16(value: number): string {
  return `0x${value.toString(16).padStart(4, '0')}`;
}
