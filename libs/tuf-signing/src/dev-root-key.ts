import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ed25519Signer } from './ed25519.js';

/** The development root key: one file in the data dir, created once, shared by every local process. */
export async function loadOrCreateDevRootKey(
  dataDir: string,
): Promise<{ signer: Ed25519Signer; file: string }> {
  const dir = join(dataDir, 'keys');
  const file = join(dir, 'dev-root-key.pem');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, Ed25519Signer.generate().toPem(), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return { signer: Ed25519Signer.fromPem(await readFile(file, 'utf8')), file };
}
