import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import type { TufKey, TufSignature } from './tuf-types.js';

/** The bytes TUF signs: the canonical JSON of the `signed` object. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

export function keyIdOf(key: TufKey): string {
  return createHash('sha256').update(canonicalBytes(key)).digest('hex');
}

export function tufKeyFromPublic(publicKey: KeyObject): TufKey {
  const raw = publicKey.export({ format: 'jwk' }).x;
  if (!raw || publicKey.asymmetricKeyType !== 'ed25519') throw new Error('only ed25519 keys are supported');
  return {
    keytype: 'ed25519',
    scheme: 'ed25519',
    keyval: { public: Buffer.from(raw, 'base64url').toString('hex') },
  };
}

/** Whether `value` is the one kind of TUF key Otter signs with and accepts: ed25519, a 32-byte hex value. */
export function isEd25519TufKey(value: unknown): value is TufKey {
  const k = value as Partial<TufKey> | null;
  return (
    typeof k === 'object' &&
    k !== null &&
    k.keytype === 'ed25519' &&
    k.scheme === 'ed25519' &&
    typeof k.keyval?.public === 'string' &&
    /^[0-9a-f]{64}$/.test(k.keyval.public)
  );
}

export function publicKeyFromTufKey(key: TufKey): KeyObject {
  if (!isEd25519TufKey(key)) {
    throw new Error('only ed25519 keys with a 32-byte hex public value are supported');
  }
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(key.keyval.public, 'hex').toString('base64url') },
    format: 'jwk',
  });
}

/** A private signing key with its TUF identity. */
export class Ed25519Signer {
  readonly tufKey: TufKey;
  readonly keyId: string;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('only ed25519 keys are supported');
    this.tufKey = tufKeyFromPublic(createPublicKey(privateKey));
    this.keyId = keyIdOf(this.tufKey);
  }

  static generate(): Ed25519Signer {
    return new Ed25519Signer(generateKeyPairSync('ed25519').privateKey);
  }

  static fromPem(pem: string, passphrase?: string): Ed25519Signer {
    return new Ed25519Signer(createPrivateKey({ key: pem, format: 'pem', passphrase }));
  }

  toPem(passphrase?: string): string {
    return this.privateKey
      .export(
        passphrase
          ? { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }
          : { type: 'pkcs8', format: 'pem' },
      )
      .toString();
  }

  sign(signed: unknown): TufSignature {
    return { keyid: this.keyId, sig: sign(null, canonicalBytes(signed), this.privateKey).toString('hex') };
  }
}

export function verifySignature(key: TufKey, signed: unknown, signature: TufSignature): boolean {
  try {
    return verify(null, canonicalBytes(signed), publicKeyFromTufKey(key), Buffer.from(signature.sig, 'hex'));
  } catch {
    return false;
  }
}
