import {
  constants,
  createCipheriv,
  createECDH,
  createHash,
  createHmac,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { credentialBlob, encodeTpm2b as tpm2b } from '#otter/tpm-wire';
import { AttestationError } from './attestation-error.js';
import { rewrap } from './signed-attest.js';
import {
  asBytes,
  eccCurve,
  type HashName,
  hex16,
  leftPad,
  publicKeyObject,
  TPM_ALG,
  tpmHash,
  type TpmPublic,
} from './tpm-wire.js';

export interface MakeCredentialInput {
  /** The endorsement key's public area (from its certificate's TPM, see verifyEkCertificate). */
  ekPublic: TpmPublic;
  /** The TPM name of the attestation key the credential is bound to (nameAlg ‖ digest). */
  akName: Uint8Array;
  /** The secret only that TPM can recover, and only for that AK: 1 byte up to the EK nameAlg's digest size. */
  secret: Uint8Array;
}

export interface MadeCredential {
  /** The file `tpm2_activatecredential -i` reads: u32 0xBADCC0DE | u32 1 | TPM2B_ID_OBJECT | TPM2B_ENCRYPTED_SECRET. */
  credentialBlob: Buffer;
  /** TPM2B_ID_OBJECT (size-prefixed): TPM2B integrityHMAC ‖ encIdentity. */
  idObject: Buffer;
  /** TPM2B_ENCRYPTED_SECRET (size-prefixed): the OAEP-encrypted seed (RSA EK) or the ephemeral point (ECC EK). */
  encryptedSecret: Buffer;
}

/**
 * TPM2_MakeCredential in software (TPM 2.0 Part 1 §24, Part 3 §12.6): only the TPM holding the EK's private
 * key can recover `secret`, and TPM2_ActivateCredential releases it only when the object named `akName` is
 * loaded in that TPM. Hash and symmetric cipher come from the EK's public area (RSA 2048 EK: SHA-256 and
 * AES-128-CFB; P-384 EK: SHA-384 and AES-256-CFB). The EK must be a restricted decryption key with an AES-CFB
 * symmetric definition, RSA (OAEP seed encryption) or ECC P-256 / P-384 (ECDH seed agreement).
 */
export function makeCredential(input: MakeCredentialInput): MadeCredential {
  const ek = input.ekPublic;
  if (typeof ek !== 'object' || ek === null || !Buffer.isBuffer(ek.publicArea)) {
    throw new AttestationError('CREDENTIAL_INPUT_INVALID', 'ekPublic must be a parsed TPM public key');
  }
  const hash = tpmHash(ek.nameAlg);
  if (!hash || hash.name === 'sha1') {
    throw new AttestationError(
      'CREDENTIAL_EK_UNSUPPORTED',
      `EK nameAlg ${hex16(ek.nameAlg)} is not supported`,
    );
  }
  if (!ek.objectAttributes.restricted || !ek.objectAttributes.decrypt) {
    throw new AttestationError('CREDENTIAL_EK_UNSUPPORTED', 'EK must be a restricted decryption key');
  }
  const { algorithm, keyBits, mode } = ek.symmetric;
  if (
    algorithm !== TPM_ALG.AES ||
    mode !== TPM_ALG.CFB ||
    (keyBits !== 128 && keyBits !== 192 && keyBits !== 256)
  ) {
    throw new AttestationError(
      'CREDENTIAL_EK_UNSUPPORTED',
      'EK symmetric definition must be AES-CFB 128/192/256',
    );
  }
  const akName = checkName(asBytes(input.akName, 'CREDENTIAL_INPUT_INVALID', 'akName'));
  const secret = asBytes(input.secret, 'CREDENTIAL_INPUT_INVALID', 'secret');
  if (secret.length === 0 || secret.length > hash.size) {
    throw new AttestationError(
      'CREDENTIAL_INPUT_INVALID',
      `secret must be 1 to ${hash.size} bytes for this EK`,
    );
  }

  let ekKey: KeyObject;
  try {
    ekKey = publicKeyObject(ek);
  } catch (error) {
    throw rewrap(error, 'CREDENTIAL_EK_UNSUPPORTED');
  }
  const { seed, encryptedSecret } = ek.type === 'rsa' ? rsaSeed(ekKey, hash) : eccSeed(ek, hash);

  const symKey = kdfa(hash.name, seed, 'STORAGE', akName, Buffer.alloc(0), keyBits);
  const cipher = createCipheriv(`aes-${keyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(secret)), cipher.final()]);
  const hmacKey = kdfa(hash.name, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), hash.size * 8);
  const integrity = createHmac(hash.name, hmacKey).update(encIdentity).update(akName).digest();

  const idObject = tpm2b(Buffer.concat([tpm2b(integrity), encIdentity]));
  const encryptedSecretTpm2b = tpm2b(encryptedSecret);
  return {
    credentialBlob: credentialBlob(idObject, encryptedSecretTpm2b),
    idObject,
    encryptedSecret: encryptedSecretTpm2b,
  };
}

/** RSA EK: a random seed of the nameAlg's digest size, RSA-OAEP with that hash and the label "IDENTITY\0". */
function rsaSeed(
  ekKey: KeyObject,
  hash: { name: HashName; size: number },
): { seed: Buffer; encryptedSecret: Buffer } {
  const seed = randomBytes(hash.size);
  try {
    const encryptedSecret = publicEncrypt(
      {
        key: ekKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: hash.name,
        oaepLabel: Buffer.from('IDENTITY\0', 'latin1'),
      },
      seed,
    );
    return { seed, encryptedSecret };
  } catch {
    throw new AttestationError('CREDENTIAL_EK_UNSUPPORTED', 'RSA-OAEP encryption to the EK failed');
  }
}

/**
 * ECC EK: an ephemeral key on the EK's curve; Z = x of the shared point; seed = KDFe(nameAlg, Z, "IDENTITY",
 * ephemeral x, EK x). The encrypted secret is the ephemeral point as a TPMS_ECC_POINT.
 */
function eccSeed(
  ek: TpmPublic,
  hash: { name: HashName; size: number },
): { seed: Buffer; encryptedSecret: Buffer } {
  const ecc = ek.ecc!;
  const curve = eccCurve(ecc.curveId)!;
  const ephemeral = createECDH(curve.openssl);
  const ephemeralPoint = ephemeral.generateKeys();
  const ekPoint = Buffer.concat([
    Buffer.from([0x04]),
    leftPad(ecc.x, curve.size),
    leftPad(ecc.y, curve.size),
  ]);
  let z: Buffer;
  try {
    z = ephemeral.computeSecret(ekPoint);
  } catch {
    throw new AttestationError('CREDENTIAL_EK_UNSUPPORTED', 'EK point is not usable for ECDH');
  }
  const ephemeralX = ephemeralPoint.subarray(1, 1 + curve.size);
  const ephemeralY = ephemeralPoint.subarray(1 + curve.size);
  // The TPM hashes the EK's x exactly as stored in its public area.
  const seed = kdfe(hash.name, z, 'IDENTITY', ephemeralX, ecc.x, hash.size * 8);
  return { seed, encryptedSecret: Buffer.concat([tpm2b(ephemeralX), tpm2b(ephemeralY)]) };
}

function checkName(name: Buffer): Buffer {
  if (name.length >= 2) {
    const hash = tpmHash(name.readUInt16BE(0));
    if (hash && name.length === 2 + hash.size) return name;
  }
  throw new AttestationError(
    'CREDENTIAL_INPUT_INVALID',
    'akName must be a TPM name: u16 hash algorithm ‖ digest',
  );
}

/** KDF outputs here are keys and seeds; anything larger is a caller bug, not a use. */
const MAX_KDF_BITS = 8192;

const KDF_HASHES: ReadonlySet<string> = new Set(['sha1', 'sha256', 'sha384', 'sha512']);

function kdfHash(hash: HashName): HashName {
  if (!KDF_HASHES.has(hash)) throw new AttestationError('CREDENTIAL_INPUT_INVALID', 'KDF hash not supported');
  return hash;
}

function kdfBits(bits: number): number {
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > MAX_KDF_BITS) {
    throw new AttestationError('CREDENTIAL_INPUT_INVALID', `KDF output of ${bits} bits is not supported`);
  }
  return bits;
}

function kdfInput(bytes: Uint8Array): Buffer {
  return asBytes(bytes, 'CREDENTIAL_INPUT_INVALID', 'KDF input');
}

/** TPM labels are NUL-terminated strings; the NUL is part of what is hashed. */
function labelBytes(label: string): Buffer {
  if (typeof label !== 'string')
    throw new AttestationError('CREDENTIAL_INPUT_INVALID', 'KDF label must be a string');
  return Buffer.from(label.endsWith('\0') ? label : `${label}\0`, 'latin1');
}

/**
 * KDFa (TPM 2.0 Part 1 §11.4.10.2, SP 800-108 counter mode with HMAC):
 * K(i) = HMAC_hash(key, [i]32 ‖ label ‖ 00 ‖ contextU ‖ contextV ‖ [bits]32), concatenated and cut to `bits`
 * (a multiple of 8).
 */
export function kdfa(
  hash: HashName,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Buffer {
  const bytes = kdfBits(bits) / 8;
  const secret = kdfInput(key);
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(bits);
  const fixed = Buffer.concat([labelBytes(label), kdfInput(contextU), kdfInput(contextV), tail]);
  const blocks: Buffer[] = [];
  let produced = 0;
  for (let counter = 1; produced < bytes; counter++) {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(counter);
    const block = createHmac(kdfHash(hash), secret).update(head).update(fixed).digest();
    blocks.push(block);
    produced += block.length;
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}

/**
 * KDFe (TPM 2.0 Part 1 §11.4.10.3, SP 800-56A concatenation KDF):
 * K(i) = H([i]32 ‖ Z ‖ label ‖ 00 ‖ partyUInfo ‖ partyVInfo), concatenated and cut to `bits`.
 */
export function kdfe(
  hash: HashName,
  z: Uint8Array,
  label: string,
  partyUInfo: Uint8Array,
  partyVInfo: Uint8Array,
  bits: number,
): Buffer {
  const bytes = kdfBits(bits) / 8;
  const fixed = Buffer.concat([labelBytes(label), kdfInput(partyUInfo), kdfInput(partyVInfo)]);
  const secret = kdfInput(z);
  const blocks: Buffer[] = [];
  let produced = 0;
  for (let counter = 1; produced < bytes; counter++) {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(counter);
    const block = createHash(kdfHash(hash)).update(head).update(secret).update(fixed).digest();
    blocks.push(block);
    produced += block.length;
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}
