import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';

/**
 * AES-256-GCM with a key stretched from a passphrase by scrypt. Used to keep online signing keys
 * encrypted at rest: a stolen data dir without the passphrase yields no key.
 */
export interface SealedBox {
  v: 1;
  kdf: 'scrypt';
  salt: string;
  n: number;
  iv: string;
  tag: string;
  data: string;
}

const N = 2 ** 15;

function deriveKey(passphrase: string, salt: Buffer, n: number): Buffer {
  return scryptSync(passphrase, salt, 32, { N: n, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
}

export function seal(plaintext: Buffer, passphrase: string): SealedBox {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(passphrase, salt, N), iv);
  const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return {
    v: 1,
    kdf: 'scrypt',
    salt: salt.toString('base64'),
    n: N,
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    data: data.toString('base64'),
  };
}

export function open(box: SealedBox, passphrase: string): Buffer {
  const decipher = createDecipheriv(
    'aes-256-gcm',
    deriveKey(passphrase, Buffer.from(box.salt, 'base64'), box.n),
    Buffer.from(box.iv, 'base64'),
  );
  decipher.setAuthTag(Buffer.from(box.tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(box.data, 'base64')), decipher.final()]);
}
