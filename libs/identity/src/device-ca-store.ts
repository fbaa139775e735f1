// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect polyfill before it loads.
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { loadOrCreateSealedJson, readSealedJson } from './sealed-file.js';

export const DEVICE_CA_SUBJECT = 'CN=Otter Device CA';
/** The first generation's sealed key and certificate; later ones are device-ca.<n>.sealed.json. */
export const DEVICE_CA_KEY_FILE = 'device-ca.sealed.json';
/** The trust bundle: every device CA certificate valid now, the newest first. */
export const DEVICE_CA_CERT_FILE = 'device-ca.pem';

export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const GENERATION_FILE = /^device-ca(?:\.([2-9]|[1-9][0-9]{1,5}))?\.sealed\.json$/;

export interface StoredCa {
  v: 1;
  /** PKCS#8 PEM of the CA's P-256 private key. */
  privateKey: string;
  /** The CA certificate, inside the sealed (authenticated) file: device-ca.pem is only a published copy. */
  certificate: string;
  createdAt: string;
}

/** Generation n of the device CA lives in its own file, created once (link()), never rewritten. */
export function caGenerationFile(keysDir: string, generation: number): string {
  return join(keysDir, generation === 1 ? DEVICE_CA_KEY_FILE : `device-ca.${generation}.sealed.json`);
}

/** The generations present in the keys directory, oldest first. */
export async function listCaGenerations(keysDir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(keysDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return (
    names
      .map((name) => GENERATION_FILE.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      // Generation 1 has the unnumbered name only (the one data dirs had before rotation existed).
      .map((m) => (m[1] === undefined ? 1 : Number(m[1])))
      .sort((a, b) => a - b)
  );
}

/** Opens generation `n`, creating it if no process has yet; two processes racing settle on one CA. */
export async function loadOrCreateCaGeneration(
  keysDir: string,
  generation: number,
  passphrase: string,
  create: () => Promise<StoredCa>,
): Promise<{ value: StoredCa; created: boolean }> {
  return loadOrCreateSealedJson(caGenerationFile(keysDir, generation), passphrase, parseStoredCa, create);
}

/** Opens generation `n` if it exists (never creates it: another process may have just retired it). */
export async function loadCaGeneration(
  keysDir: string,
  generation: number,
  passphrase: string,
): Promise<StoredCa | undefined> {
  return readSealedJson(caGenerationFile(keysDir, generation), passphrase, parseStoredCa);
}

/** Removes a retired generation's key; another process removing it first is fine. */
export async function removeCaGeneration(keysDir: string, generation: number): Promise<void> {
  await unlink(caGenerationFile(keysDir, generation)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

/** A new self-signed P-256 CA valid from `now` (whole seconds) for `lifetimeSeconds`. */
export async function createCa(now: Date, lifetimeSeconds: number): Promise<StoredCa> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: DEVICE_CA_SUBJECT,
    notBefore,
    notAfter: new Date(notBefore.getTime() + lifetimeSeconds * 1000),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      // Path length 0: this CA signs device certificates only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    v: 1,
    privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
      .export({ type: 'pkcs8', format: 'pem' })
      .toString(),
    certificate: certificate.toString('pem'),
    createdAt: new Date().toISOString(),
  };
}

/** 16 random bytes, top bit clear (a positive INTEGER) and next bit set (no leading zero byte to strip). */
export function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function parseStoredCa(value: unknown): StoredCa {
  const v = value as Partial<StoredCa> | null;
  if (v?.v !== 1 || typeof v.privateKey !== 'string' || typeof v.certificate !== 'string') {
    throw new Error('the device CA key file has an unknown format');
  }
  return v as StoredCa;
}
