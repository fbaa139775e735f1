import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * Parsers for the few TPM 2.0 wire structures the agent and its tests handle (TPM 2.0 Part 2; all integers
 * big-endian). Each parser reads exactly one structure and rejects trailing or missing bytes, so a truncated
 * or padded blob fails loudly instead of yielding a half-read key.
 */

export const TPM_ALG = {
  rsa: 0x0001,
  sha1: 0x0004,
  sha256: 0x000b,
  sha384: 0x000c,
  sha512: 0x000d,
  null: 0x0010,
  rsassa: 0x0014,
  ecdsa: 0x0018,
  ecdaa: 0x001a,
  ecc: 0x0023,
} as const;

const TPM_ECC_CURVE: Record<number, 'P-256' | 'P-384' | 'P-521'> = {
  0x0003: 'P-256',
  0x0004: 'P-384',
  0x0005: 'P-521',
};

const CURVE_BYTES = { 'P-256': 32, 'P-384': 48, 'P-521': 66 } as const;

const HASH_NAME: Record<number, string> = {
  [TPM_ALG.sha1]: 'sha1',
  [TPM_ALG.sha256]: 'sha256',
  [TPM_ALG.sha384]: 'sha384',
  [TPM_ALG.sha512]: 'sha512',
};

/** TPMA_OBJECT bits (Part 2, §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

export type TpmObjectAttribute = keyof typeof TPMA_OBJECT;

interface TpmPublicCommon {
  nameAlg: number;
  /** Raw TPMA_OBJECT. */
  attributes: number;
  authPolicy: Buffer;
  /** The TPMT_PUBLIC (without the TPM2B size), the bytes the object's name hashes. */
  tpmtPublic: Buffer;
}

export interface TpmEccPublic extends TpmPublicCommon {
  type: 'ecc';
  curve: 'P-256' | 'P-384' | 'P-521';
  /** Signing scheme (TPM_ALG_ECDSA, …) or TPM_ALG_NULL, and its hash. */
  scheme: number;
  schemeHash: number;
  x: Buffer;
  y: Buffer;
}

export interface TpmRsaPublic extends TpmPublicCommon {
  type: 'rsa';
  keyBits: number;
  exponent: number;
  modulus: Buffer;
}

export type TpmPublic = TpmEccPublic | TpmRsaPublic;

class Reader {
  private offset = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get position(): number {
    return this.offset;
  }

  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new TpmStructureError(`${this.what}: truncated`);
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.offset++);
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return Buffer.from(v);
  }

  tpm2b(): Buffer {
    return this.bytes(this.u16());
  }

  end(): void {
    if (this.offset !== this.buf.length) {
      throw new TpmStructureError(`${this.what}: ${this.buf.length - this.offset} unexpected trailing bytes`);
    }
  }
}

export class TpmStructureError extends Error {
  override readonly name = 'TpmStructureError';
}

/** Parses a TPM2B_PUBLIC (as tpm2-tools writes with `-f tss`) of an RSA or ECC key. */
export function parseTpm2bPublic(tpm2bPublic: Buffer): TpmPublic {
  const outer = new Reader(tpm2bPublic, 'TPM2B_PUBLIC');
  const tpmtPublic = outer.tpm2b();
  outer.end();
  return parseTpmtPublic(tpmtPublic);
}

function parseTpmtPublic(tpmtPublic: Buffer): TpmPublic {
  const r = new Reader(tpmtPublic, 'TPMT_PUBLIC');
  const type = r.u16();
  const nameAlg = r.u16();
  const attributes = r.u32();
  const authPolicy = r.tpm2b();
  const common = { nameAlg, attributes, authPolicy, tpmtPublic };
  const symmetric = r.u16();
  if (symmetric !== TPM_ALG.null) {
    r.u16(); // keyBits
    r.u16(); // mode
  }
  if (type === TPM_ALG.ecc) {
    const scheme = r.u16();
    let schemeHash = TPM_ALG.null as number;
    if (scheme !== TPM_ALG.null) {
      schemeHash = r.u16();
      if (scheme === TPM_ALG.ecdaa) r.u16(); // count
    }
    const curveId = r.u16();
    const curve = TPM_ECC_CURVE[curveId];
    if (!curve) throw new TpmStructureError(`TPMT_PUBLIC: unsupported ECC curve 0x${curveId.toString(16)}`);
    if (r.u16() !== TPM_ALG.null) r.u16(); // kdf scheme and its hash
    const x = r.tpm2b();
    const y = r.tpm2b();
    r.end();
    return { type: 'ecc', ...common, curve, scheme, schemeHash, x, y };
  }
  if (type === TPM_ALG.rsa) {
    if (r.u16() !== TPM_ALG.null) r.u16(); // scheme and its hash
    const keyBits = r.u16();
    const exponent = r.u32() || 65537;
    const modulus = r.tpm2b();
    r.end();
    return { type: 'rsa', ...common, keyBits, exponent, modulus };
  }
  throw new TpmStructureError(`TPMT_PUBLIC: unsupported key type 0x${type.toString(16)}`);
}

/** The TPM object name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC). */
export function tpmObjectName(tpm2bPublic: Buffer): Buffer {
  const pub = parseTpm2bPublic(tpm2bPublic);
  const hash = HASH_NAME[pub.nameAlg];
  if (!hash) throw new TpmStructureError(`unsupported name algorithm 0x${pub.nameAlg.toString(16)}`);
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(pub.nameAlg);
  return Buffer.concat([alg, createHash(hash).update(pub.tpmtPublic).digest()]);
}

/** True when every named attribute is set on the object. */
export function hasObjectAttributes(pub: TpmPublic, names: TpmObjectAttribute[]): boolean {
  return names.every((n) => (pub.attributes & TPMA_OBJECT[n]) !== 0);
}

/** A node:crypto public key for the key in a TPM2B_PUBLIC. */
export function tpmPublicToKeyObject(tpm2bPublic: Buffer): KeyObject {
  const pub = parseTpm2bPublic(tpm2bPublic);
  if (pub.type === 'ecc') {
    const size = CURVE_BYTES[pub.curve];
    return createPublicKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: pub.curve,
        x: leftPad(pub.x, size).toString('base64url'),
        y: leftPad(pub.y, size).toString('base64url'),
      },
    });
  }
  const e = Buffer.alloc(4);
  e.writeUInt32BE(pub.exponent);
  return createPublicKey({
    format: 'jwk',
    key: { kty: 'RSA', n: pub.modulus.toString('base64url'), e: stripLeadingZeros(e).toString('base64url') },
  });
}

export interface TpmEcdsaSignature {
  hashAlg: number;
  r: Buffer;
  s: Buffer;
}

/** Parses a TPMT_SIGNATURE holding an ECDSA signature (tpm2-tools' default `tss` signature format). */
export function parseTpmtSignature(tpmtSignature: Buffer): TpmEcdsaSignature {
  const r = new Reader(tpmtSignature, 'TPMT_SIGNATURE');
  const sigAlg = r.u16();
  if (sigAlg !== TPM_ALG.ecdsa) {
    throw new TpmStructureError(`TPMT_SIGNATURE: expected ECDSA, got 0x${sigAlg.toString(16)}`);
  }
  const hashAlg = r.u16();
  const sigR = r.tpm2b();
  const sigS = r.tpm2b();
  r.end();
  return { hashAlg, r: sigR, s: sigS };
}

/** ECDSA r ‖ s, each left-padded to the curve size: JOSE's (and node's `ieee-p1363`) signature encoding. */
export function ecdsaSignatureToRawRs(sig: TpmEcdsaSignature, componentBytes = 32): Buffer {
  return Buffer.concat([leftPad(sig.r, componentBytes), leftPad(sig.s, componentBytes)]);
}

export interface TpmsClockInfo {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
}

export interface TpmPcrSelection {
  hashAlg: number;
  pcrs: number[];
}

interface TpmsAttestCommon {
  qualifiedSigner: Buffer;
  /** The caller's qualifying data: the nonce of a quote. */
  extraData: Buffer;
  clockInfo: TpmsClockInfo;
  firmwareVersion: bigint;
}

export interface TpmsQuoteAttest extends TpmsAttestCommon {
  type: 'quote';
  pcrSelections: TpmPcrSelection[];
  pcrDigest: Buffer;
}

export interface TpmsCertifyAttest extends TpmsAttestCommon {
  type: 'certify';
  /** Name of the certified object. */
  name: Buffer;
  qualifiedName: Buffer;
}

export type TpmsAttest = TpmsQuoteAttest | TpmsCertifyAttest;

export const TPM_GENERATED_VALUE = 0xff544347;
const TPM_ST_ATTEST_CERTIFY = 0x8017;
const TPM_ST_ATTEST_QUOTE = 0x8018;

/** Parses a TPMS_ATTEST of a quote or a certify (the message the signing key signed). */
export function parseTpmsAttest(attest: Buffer): TpmsAttest {
  const r = new Reader(attest, 'TPMS_ATTEST');
  if (r.u32() !== TPM_GENERATED_VALUE) throw new TpmStructureError('TPMS_ATTEST: not TPM_GENERATED_VALUE');
  const type = r.u16();
  const common: TpmsAttestCommon = {
    qualifiedSigner: r.tpm2b(),
    extraData: r.tpm2b(),
    clockInfo: { clock: r.u64(), resetCount: r.u32(), restartCount: r.u32(), safe: r.u8() === 1 },
    firmwareVersion: r.u64(),
  };
  if (type === TPM_ST_ATTEST_QUOTE) {
    const count = r.u32();
    const pcrSelections: TpmPcrSelection[] = [];
    for (let i = 0; i < count; i++) {
      const hashAlg = r.u16();
      const bitmap = r.bytes(r.u8());
      const pcrs: number[] = [];
      for (let byte = 0; byte < bitmap.length; byte++) {
        for (let bit = 0; bit < 8; bit++) if (bitmap[byte]! & (1 << bit)) pcrs.push(byte * 8 + bit);
      }
      pcrSelections.push({ hashAlg, pcrs });
    }
    const pcrDigest = r.tpm2b();
    r.end();
    return { type: 'quote', ...common, pcrSelections, pcrDigest };
  }
  if (type === TPM_ST_ATTEST_CERTIFY) {
    const name = r.tpm2b();
    const qualifiedName = r.tpm2b();
    r.end();
    return { type: 'certify', ...common, name, qualifiedName };
  }
  throw new TpmStructureError(`TPMS_ATTEST: unsupported type 0x${type.toString(16)}`);
}

function stripLeadingZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function leftPad(b: Buffer, size: number): Buffer {
  const v = stripLeadingZeros(b);
  if (v.length > size) throw new TpmStructureError(`integer of ${v.length} bytes does not fit ${size} bytes`);
  return Buffer.concat([Buffer.alloc(size - v.length), v]);
}
