import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { resolveClientSettings, TufAdminClient, type TufRepositoryName } from '#otter/api-client';
import {
  Ed25519Signer,
  isEd25519TufKey,
  tufExpiry,
  type RootSigned,
  type SignedEnvelope,
  type TufKey,
} from '#otter/tuf-signing';
import { CliError, type CliContext } from '../cli-context.js';

/** Files and values the `otter tuf` commands read and write; everything here works without a server. */

export const MIN_PASSPHRASE_LENGTH = 12;

export function tufAdminClient(ctx: CliContext, repository: TufRepositoryName): TufAdminClient {
  return new TufAdminClient(resolveClientSettings(ctx.env, ctx.cwd), repository);
}

/** ` --repository director` to repeat in a suggested command line; nothing for the default (image). */
export function repositoryFlag(repository: TufRepositoryName): string {
  return repository === 'image' ? '' : ` --repository ${repository}`;
}

/** Key ids are shown by their first 16 hex digits (64 bits: unique enough to tell keys apart by eye). */
export function shortId(keyId: string): string {
  return keyId.slice(0, 16);
}

/** The passphrase held in the environment variable an option names; never taken from the command line. */
export function passphraseFrom(ctx: CliContext, variable: string | undefined): string | undefined {
  if (variable === undefined) return undefined;
  const value = ctx.env[variable];
  if (!value)
    throw new CliError(`environment variable ${variable} (from --passphrase-env) is not set or empty`);
  return value;
}

export function readText(ctx: CliContext, file: string, what: string): string {
  try {
    return readFileSync(resolve(ctx.cwd, file), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      code === 'ENOENT'
        ? `${what} ${file} not found`
        : `cannot read ${what} ${file}: ${(e as Error).message}`,
    );
  }
}

function readJson(ctx: CliContext, file: string, what: string): unknown {
  const text = readText(ctx, file, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CliError(`${what} ${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** Loads a root key holder's private key (PKCS#8 PEM, possibly encrypted). */
export function loadSigner(ctx: CliContext, file: string, passphraseEnv: string | undefined): Ed25519Signer {
  const pem = readText(ctx, file, 'key file');
  const passphrase = passphraseFrom(ctx, passphraseEnv);
  if (pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') && passphrase === undefined) {
    throw new CliError(
      `key ${file} is encrypted: give --passphrase-env VAR, naming the environment variable that holds its passphrase`,
    );
  }
  try {
    return Ed25519Signer.fromPem(pem, passphrase);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_OSSL_BAD_DECRYPT') throw new CliError(`cannot decrypt key ${file}: wrong passphrase`);
    throw new CliError(`key ${file} is not an ed25519 private key in PKCS#8 PEM: ${(e as Error).message}`);
  }
}

/** A TUF public key as `otter tuf keygen` writes it; only the three TUF fields are kept (they make the key id). */
export function parseTufKey(value: unknown, label: string): TufKey {
  if (!isEd25519TufKey(value)) {
    throw new CliError(
      `${label} is not an ed25519 TUF public key ({"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"<64 hex>"}})`,
    );
  }
  return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: value.keyval.public } };
}

export function readTufKey(ctx: CliContext, file: string): TufKey {
  return parseTufKey(readJson(ctx, file, 'public key file'), `public key file ${file}`);
}

/**
 * A root envelope from a file. Only its shape is checked here (enough to sign or count signatures);
 * `checkRootTransition` judges everything else.
 */
export function readRootFile(ctx: CliContext, file: string): SignedEnvelope<RootSigned> {
  const value = readJson(ctx, file, 'root file') as Partial<SignedEnvelope<RootSigned>> | null;
  const signed = value?.signed as Partial<RootSigned> | undefined;
  if (
    typeof value !== 'object' ||
    value === null ||
    !Array.isArray(value.signatures) ||
    !value.signatures.every((s) => typeof s?.keyid === 'string' && typeof s?.sig === 'string') ||
    typeof signed !== 'object' ||
    signed === null
  ) {
    throw new CliError(`root file ${file} is not TUF metadata ({"signatures": [...], "signed": {...}})`);
  }
  if (signed._type !== 'root') {
    throw new CliError(`root file ${file} holds ${JSON.stringify(signed._type)} metadata, not a root`);
  }
  if (
    !Number.isInteger(signed.version) ||
    typeof signed.keys !== 'object' ||
    signed.keys === null ||
    typeof signed.roles !== 'object' ||
    signed.roles === null ||
    !(['root', 'targets', 'snapshot', 'timestamp'] as const).every((r) =>
      Array.isArray(signed.roles?.[r]?.keyids),
    )
  ) {
    throw new CliError(`root file ${file} lacks a version, keys or roles`);
  }
  return value as SignedEnvelope<RootSigned>;
}

export function rootJson(envelope: SignedEnvelope<RootSigned>): string {
  return `${JSON.stringify(envelope, null, 2)}\n`;
}

/** Creates a file that must not exist yet (keys and drafts are never silently replaced). */
export function writeNewFile(ctx: CliContext, file: string, content: string, mode: number): string {
  const path = resolve(ctx.cwd, file);
  try {
    writeFileSync(path, content, { mode, flag: 'wx' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      code === 'EEXIST'
        ? `${file} already exists; not overwriting it`
        : `cannot write ${file}: ${(e as Error).message}`,
    );
  }
  // The mode given at creation is reduced by the umask; a private key must end up 0600 whatever it is.
  chmodSync(path, mode);
  return path;
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // nothing to clean up
  }
}

/** Replaces a file in one step (write beside it, then rename), keeping its mode: a crash never leaves half a root. */
export function replaceFile(ctx: CliContext, file: string, content: string): void {
  const path = resolve(ctx.cwd, file);
  let mode = 0o644;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    // a new file
  }
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, content, { mode, flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    throw new CliError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

/** `365d`, `12h` or an ISO 8601 date-time; returns TUF's `YYYY-MM-DDTHH:MM:SSZ`, which must be in the future. */
export function parseExpires(text: string, now = Date.now()): string {
  const relative = /^(\d{1,5})([dh])$/.exec(text);
  let at: number;
  if (relative) {
    at = now + Number(relative[1]) * (relative[2] === 'd' ? 86_400_000 : 3_600_000);
  } else if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text)) {
    at = Date.parse(text);
  } else {
    at = Number.NaN;
  }
  if (!Number.isFinite(at)) {
    throw new CliError(
      `--expires ${JSON.stringify(text)}: give days (365d), hours (12h) or an ISO date (2027-01-31)`,
    );
  }
  if (at <= now) throw new CliError(`--expires ${text} is not in the future`);
  return tufExpiry(at);
}
