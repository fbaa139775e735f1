import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TpmWireError } from './tpm-wire-error.js';
import { eccCurve, hex16, MAX_DIGEST_BYTES, TPM_ALG, tpmHash } from './tpm-constants.js';
import { asBytes, TpmReader } from './tpm-reader.js';

/** TPMA_OBJECT, as the raw value and the flags a verifier decides on. */
export interface TpmObjectAttributes {
  value: number;
  fixedTPM: boolean;
  stClear: boolean;
  fixedParent: boolean;
  sensitiveDataOrigin: boolean;
  userWithAuth: boolean;
  adminWithPolicy: boolean;
  noDA: boolean;
  encryptedDuplication: boolean;
  restricted: boolean;
  decrypt: boolean;
  sign: boolean;
}

/** TPMT_SYM_DEF_OBJECT; `keyBits` and `mode` only when `algorithm` is not TPM_ALG_NULL (0x0010). */
export interface TpmSymmetric {
  algorithm: number;
  keyBits?: number;
  mode?: number;
}

/** TPMT_RSA_SCHEME / TPMT_ECC_SCHEME (or a KDF scheme): the scheme and, for most, its hash. */
export interface TpmScheme {
  scheme: number;
  hashAlg?: number;
  /** ECDAA only. */
  count?: number;
}

/** A parsed TPMT_PUBLIC of an RSA or ECC key. */
export interface TpmPublic {
  type: 'ecc' | 'rsa';
  nameAlg: number;
  objectAttributes: TpmObjectAttributes;
  authPolicy: Buffer;
  symmetric: TpmSymmetric;
  scheme: TpmScheme;
  ecc?: { curveId: number; kdf: TpmScheme; x: Buffer; y: Buffer };
  /**
   * `exponent` is the effective one (the TPM's 0 means 65537); `exponentField` is the field as sent, which the
   * TCG EK templates fix at 0 and the object's name hashes.
   */
  rsa?: { keyBits: number; exponent: number; exponentField: number; modulus: Buffer };
  /** The TPMT_PUBLIC bytes exactly as received: what the object's name hashes. */
  publicArea: Buffer;
}

/** A TPMT_PUBLIC is a few hundred bytes; anything far larger is not one and is not worth copying. */
const MAX_PUBLIC_BYTES = 2048;
const MAX_RSA_KEY_BYTES = 512;
const MAX_ECC_COORDINATE_BYTES = 66;

const SCHEMES_WITH_HASH: ReadonlySet<number> = new Set([
  TPM_ALG.RSASSA,
  TPM_ALG.RSAPSS,
  TPM_ALG.OAEP,
  TPM_ALG.ECDSA,
  TPM_ALG.ECDH,
  0x001b, // SM2
  TPM_ALG.ECSCHNORR,
  0x001d, // ECMQV
]);
const KDF_SCHEMES: ReadonlySet<number> = new Set([
  0x0007, // MGF1
  0x0020, // KDF1_SP800_56A
  0x0021, // KDF2
  0x0022, // KDF1_SP800_108
]);
const BLOCK_CIPHERS: ReadonlySet<number> = new Set([TPM_ALG.AES, 0x0013 /* SM4 */, 0x0026 /* CAMELLIA */]);

/**
 * Parses a TPM2B_PUBLIC: the u16 size prefix followed by a TPMT_PUBLIC, as `tpm2_create -u`,
 * `tpm2_readpublic -o` and `tpm2_createek -u` write it and TPM2_ReadPublic returns it. The size must match the
 * rest exactly. For the bare TPMT_PUBLIC (no size prefix) use parseTpmtPublic.
 */
export function parseTpm2bPublic(bytes: Uint8Array): TpmPublic {
  const input = asBytes(bytes, 'TPM_PUBLIC_MALFORMED', 'TPM2B_PUBLIC');
  const reader = new TpmReader(input, 'TPM_PUBLIC_MALFORMED', 'TPM2B_PUBLIC');
  const size = reader.u16('size');
  if (size !== reader.remaining) {
    reader.fail(`size field says ${size} bytes but ${reader.remaining} follow`);
  }
  return parseTpmtPublic(input.subarray(2));
}

/** Parses a bare TPMT_PUBLIC (no size prefix). The whole input must be the one structure. */
export function parseTpmtPublic(bytes: Uint8Array): TpmPublic {
  const input = asBytes(bytes, 'TPM_PUBLIC_MALFORMED', 'TPMT_PUBLIC');
  if (input.length > MAX_PUBLIC_BYTES) {
    throw new TpmWireError('TPM_PUBLIC_MALFORMED', `TPMT_PUBLIC is ${input.length} bytes, too large`);
  }
  const r = new TpmReader(input, 'TPM_PUBLIC_MALFORMED', 'TPMT_PUBLIC');
  const typeAlg = r.u16('type');
  if (typeAlg !== TPM_ALG.RSA && typeAlg !== TPM_ALG.ECC) {
    throw new TpmWireError(
      'TPM_PUBLIC_UNSUPPORTED',
      `TPMT_PUBLIC: key type ${hex16(typeAlg)} is not RSA or ECC`,
    );
  }
  const nameAlg = r.u16('nameAlg');
  const objectAttributes = decodeAttributes(r.u32('objectAttributes'));
  const authPolicy = r.tpm2b('authPolicy', MAX_DIGEST_BYTES);
  const symmetric = readSymmetric(r);
  const scheme = readScheme(r, 'scheme');

  if (typeAlg === TPM_ALG.RSA) {
    const keyBits = r.u16('rsa keyBits');
    const rawExponent = r.u32('rsa exponent');
    const modulus = r.tpm2b('rsa modulus', MAX_RSA_KEY_BYTES);
    r.end();
    if (keyBits < 1024 || keyBits > 4096 || keyBits % 8 !== 0) r.fail(`rsa keyBits ${keyBits} not supported`);
    if (modulus.length * 8 !== keyBits) r.fail(`rsa modulus is ${modulus.length} bytes for ${keyBits} bits`);
    const exponent = rawExponent === 0 ? 65537 : rawExponent;
    if (exponent < 3 || exponent % 2 === 0) r.fail(`rsa exponent ${exponent} is not valid`);
    return {
      type: 'rsa',
      nameAlg,
      objectAttributes,
      authPolicy,
      symmetric,
      scheme,
      rsa: { keyBits, exponent, exponentField: rawExponent, modulus },
      publicArea: Buffer.from(input),
    };
  }

  const curveId = r.u16('ecc curveID');
  const kdf = readScheme(r, 'ecc kdf', true);
  const x = r.tpm2b('ecc x', MAX_ECC_COORDINATE_BYTES);
  const y = r.tpm2b('ecc y', MAX_ECC_COORDINATE_BYTES);
  r.end();
  const curve = eccCurve(curveId);
  if (curve && (x.length > curve.size || y.length > curve.size)) {
    r.fail(`ecc point coordinates longer than the ${curve.jwk} field`);
  }
  return {
    type: 'ecc',
    nameAlg,
    objectAttributes,
    authPolicy,
    symmetric,
    scheme,
    ecc: { curveId, kdf, x, y },
    publicArea: Buffer.from(input),
  };
}

function decodeAttributes(value: number): TpmObjectAttributes {
  const bit = (n: number): boolean => ((value >>> n) & 1) === 1;
  return {
    value,
    fixedTPM: bit(1),
    stClear: bit(2),
    fixedParent: bit(4),
    sensitiveDataOrigin: bit(5),
    userWithAuth: bit(6),
    adminWithPolicy: bit(7),
    noDA: bit(10),
    encryptedDuplication: bit(11),
    restricted: bit(16),
    decrypt: bit(17),
    sign: bit(18),
  };
}

function readSymmetric(r: TpmReader): TpmSymmetric {
  const algorithm = r.u16('symmetric algorithm');
  if (algorithm === TPM_ALG.NULL) return { algorithm };
  if (!BLOCK_CIPHERS.has(algorithm)) r.fail(`symmetric algorithm ${hex16(algorithm)} unknown`);
  return { algorithm, keyBits: r.u16('symmetric keyBits'), mode: r.u16('symmetric mode') };
}

function readScheme(r: TpmReader, field: string, kdf = false): TpmScheme {
  const scheme = r.u16(field);
  if (scheme === TPM_ALG.NULL) return { scheme };
  if (kdf) {
    if (!KDF_SCHEMES.has(scheme)) r.fail(`${field} ${hex16(scheme)} unknown`);
    return { scheme, hashAlg: r.u16(`${field} hash`) };
  }
  if (scheme === TPM_ALG.RSAES) return { scheme };
  if (scheme === TPM_ALG.ECDAA)
    return { scheme, hashAlg: r.u16(`${field} hash`), count: r.u16(`${field} count`) };
  if (!SCHEMES_WITH_HASH.has(scheme)) r.fail(`${field} ${hex16(scheme)} unknown`);
  return { scheme, hashAlg: r.u16(`${field} hash`) };
}

/** The TPM name of an object: u16 nameAlg ‖ H_nameAlg(TPMT_PUBLIC). */
export function tpmObjectName(key: TpmPublic): Buffer {
  const hash = tpmHash(key.nameAlg);
  if (!hash) {
    throw new TpmWireError('TPM_PUBLIC_UNSUPPORTED', `nameAlg ${hex16(key.nameAlg)} is not a supported hash`);
  }
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(key.nameAlg);
  return Buffer.concat([alg, createHash(hash.name).update(key.publicArea).digest()]);
}

/** Building a KeyObject costs about a third of a quote verification, so parsed keys remember theirs. */
const keyObjects = new WeakMap<TpmPublic, KeyObject>();

/**
 * The node:crypto public key of a parsed TPM key: ECC on NIST P-256 or P-384 (the point must be on the
 * curve), or RSA of 2048 bits or more. Anything else is TPM_PUBLIC_UNSUPPORTED.
 */
export function publicKeyObject(key: TpmPublic): KeyObject {
  const cached = keyObjects.get(key);
  if (cached) return cached;
  const created = buildKeyObject(key);
  keyObjects.set(key, created);
  return created;
}

function buildKeyObject(key: TpmPublic): KeyObject {
  if (key.type === 'ecc' && key.ecc) {
    const curve = eccCurve(key.ecc.curveId);
    if (!curve) {
      throw new TpmWireError(
        'TPM_PUBLIC_UNSUPPORTED',
        `ECC curve ${hex16(key.ecc.curveId)} is not P-256 or P-384`,
      );
    }
    const jwk = {
      kty: 'EC',
      crv: curve.jwk,
      x: leftPad(key.ecc.x, curve.size).toString('base64url'),
      y: leftPad(key.ecc.y, curve.size).toString('base64url'),
    };
    return importJwk(jwk, 'ECC point is not on the curve');
  }
  if (key.type === 'rsa' && key.rsa) {
    if (key.rsa.keyBits < 2048) {
      throw new TpmWireError('TPM_PUBLIC_UNSUPPORTED', `RSA key of ${key.rsa.keyBits} bits is too small`);
    }
    // OpenSSL imports any integer as a modulus; an RSA modulus is odd and uses all its bits.
    const modulus = key.rsa.modulus;
    if (modulus[0]! < 0x80 || (modulus[modulus.length - 1]! & 1) === 0) {
      throw new TpmWireError('TPM_PUBLIC_MALFORMED', 'RSA modulus is not a valid modulus');
    }
    const e = Buffer.alloc(4);
    e.writeUInt32BE(key.rsa.exponent);
    const jwk = {
      kty: 'RSA',
      n: key.rsa.modulus.toString('base64url'),
      e: e.subarray(e.findIndex((b) => b !== 0)).toString('base64url'),
    };
    return importJwk(jwk, 'RSA public key is not valid');
  }
  throw new TpmWireError('TPM_PUBLIC_MALFORMED', 'public key has no key material');
}

function importJwk(jwk: Record<string, string>, reason: string): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw new TpmWireError('TPM_PUBLIC_MALFORMED', reason);
  }
}

export function leftPad(bytes: Buffer, size: number): Buffer {
  if (bytes.length >= size) return bytes;
  return Buffer.concat([Buffer.alloc(size - bytes.length), bytes]);
}
