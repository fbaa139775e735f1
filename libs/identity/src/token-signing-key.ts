import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { loadOrCreateSealedJson } from './sealed-file.js';

export const TOKEN_SIGNING_KEY_FILE = 'device-token-key.sealed.json';

/** The P-256 key Otter signs device access tokens with; `kid` is its RFC 7638 JWK thumbprint. */
export interface TokenSigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  kid: string;
}

interface StoredSigningKey {
  v: 1;
  /** PKCS#8 PEM. */
  privateKey: string;
  createdAt: string;
}

/**
 * A key of its own rather than one derived from the passphrase: rotating the passphrase (re-sealing) then
 * leaves issued tokens valid, and a leaked token key says nothing about the passphrase. Sealed and created
 * exactly once like the device CA key, so every replica sharing the data dir signs with the same key.
 */
export async function loadOrCreateTokenSigningKey(
  dataDir: string,
  passphrase: string,
): Promise<TokenSigningKey> {
  const { value } = await loadOrCreateSealedJson(
    join(dataDir, 'keys', TOKEN_SIGNING_KEY_FILE),
    passphrase,
    parseStoredSigningKey,
    async () => ({
      v: 1 as const,
      privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString(),
      createdAt: new Date().toISOString(),
    }),
  );
  return tokenSigningKeyFrom(createPrivateKey(value.privateKey));
}

/** Wraps an existing P-256 private key (tests, or a key kept elsewhere). */
export async function tokenSigningKeyFrom(privateKey: KeyObject): Promise<TokenSigningKey> {
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('the token signing key must be an EC P-256 private key');
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, kid: await calculateJwkThumbprint(await exportJWK(publicKey)) };
}

function parseStoredSigningKey(value: unknown): StoredSigningKey {
  const v = value as Partial<StoredSigningKey> | null;
  if (v?.v !== 1 || typeof v.privateKey !== 'string') {
    throw new Error('the device token key file has an unknown format');
  }
  return v as StoredSigningKey;
}
