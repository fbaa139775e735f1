import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { open, seal, type SealedBox } from '#otter/tuf-signing';

/**
 * A secret kept in the data dir as JSON sealed with the key passphrase (AES-256-GCM, scrypt), created exactly
 * once. Two processes starting together may both generate one; link() lets the first win and the other
 * reads and adopts the winner's, so every process ends up with the same secret.
 */
export async function loadOrCreateSealedJson<T>(
  file: string,
  passphrase: string,
  parse: (value: unknown) => T,
  create: () => Promise<T>,
): Promise<{ value: T; created: boolean }> {
  const existing = await readSealedJson(file, passphrase, parse);
  if (existing !== undefined) return { value: existing, created: false };
  const created = await create();
  const won = await writeExclusive(
    file,
    JSON.stringify(seal(Buffer.from(JSON.stringify(created)), passphrase)),
  );
  if (won) return { value: created, created: true };
  const winner = await readSealedJson(file, passphrase, parse);
  if (winner === undefined) throw new Error(`${file} vanished while being created`);
  return { value: winner, created: false };
}

/** The sealed file's content, or undefined when there is no such file. */
export async function readSealedJson<T>(
  file: string,
  passphrase: string,
  parse: (value: unknown) => T,
): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let plaintext: Buffer;
  try {
    plaintext = open(JSON.parse(text) as SealedBox, passphrase);
  } catch {
    // The GCM tag covers the whole content: a wrong passphrase and a tampered file look the same here.
    throw new Error(`cannot open ${file}: wrong OTTER_KEY_PASSPHRASE or a damaged key file`);
  }
  return parse(JSON.parse(plaintext.toString('utf8')));
}

/** Writes a complete file under its final name only if none exists; false when another writer got there first. */
async function writeExclusive(file: string, content: string): Promise<boolean> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  try {
    // Unlike open(O_EXCL) followed by a write, link() publishes the file whole: a reader never sees it half written.
    await link(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp);
  }
}

/** Replaces a public file atomically (write beside it, then rename), leaving it world-readable. */
export async function writePublicFile(file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode: 0o644 });
  await chmod(tmp, 0o644);
  await rename(tmp, file);
}
