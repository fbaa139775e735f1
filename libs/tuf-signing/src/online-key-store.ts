import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ed25519Signer } from './ed25519.js';
import { open, seal, type SealedBox } from './secret-box.js';
import type { SigningLog } from './signing-log.js';
import { ONLINE_ROLES, type OnlineRole } from './tuf-types.js';

interface StoredKey {
  role: OnlineRole;
  pem: string;
  createdAt: string;
}

export interface OnlineKeyInfo {
  role: OnlineRole;
  keyId: string;
  createdAt: string;
}

/**
 * The online signing keys of one TUF repository (targets, snapshot, timestamp), kept in the data dir,
 * sealed with OTTER_KEY_PASSPHRASE. A role may hold several keys at once: the one the current root lists,
 * and a newer one waiting for a root that lists it (rotation).
 */
export class OnlineKeyStore {
  private cache?: Map<string, { signer: Ed25519Signer; info: OnlineKeyInfo }>;

  constructor(
    private readonly dir: string,
    private readonly repository: string,
    private readonly passphrase: string,
    private readonly logger?: SigningLog,
  ) {}

  /**
   * The key store of one repository (`image`, `director`) in `$dataDir/keys`, its passphrase resolved. In
   * production every online role gets a key at once, so that the root ceremony can list them.
   */
  static async open(
    repository: string,
    settings: { env: string; dataDir: string; keyPassphrase?: string },
    logger: SigningLog,
  ): Promise<OnlineKeyStore> {
    const passphrase = await OnlineKeyStore.passphraseFor(settings.dataDir, settings.keyPassphrase, logger);
    const store = new OnlineKeyStore(join(settings.dataDir, 'keys'), repository, passphrase, logger);
    if (settings.env === 'production') await store.ensureKeys(ONLINE_ROLES);
    return store;
  }

  /** Resolves the passphrase: the configured one, or in development a generated one kept beside the keys. */
  static async passphraseFor(
    dataDir: string,
    configured: string | undefined,
    logger: Pick<SigningLog, 'warn'>,
  ): Promise<string> {
    if (configured) return configured;
    const file = join(dataDir, 'keys', 'dev-passphrase');
    await mkdir(join(dataDir, 'keys'), { recursive: true, mode: 0o700 });
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch {
      await writeExclusive(file, randomBytes(24).toString('base64url'));
      logger.warn(
        `OTTER_KEY_PASSPHRASE is not set: online TUF keys are sealed with a generated passphrase stored at ${file}. ` +
          'Set OTTER_KEY_PASSPHRASE in production.',
      );
      return (await readFile(file, 'utf8')).trim();
    }
  }

  private get file(): string {
    return join(this.dir, `${this.repository}-online-keys.sealed.json`);
  }

  async keys(): Promise<Array<{ signer: Ed25519Signer; info: OnlineKeyInfo }>> {
    if (!this.cache) {
      this.cache = new Map();
      for (const k of await this.readStored()) {
        const signer = Ed25519Signer.fromPem(k.pem);
        this.cache.set(signer.keyId, {
          signer,
          info: { role: k.role, keyId: signer.keyId, createdAt: k.createdAt },
        });
      }
    }
    return [...this.cache.values()];
  }

  async signer(keyId: string): Promise<Ed25519Signer | undefined> {
    const cached = (await this.keys()).find((k) => k.info.keyId === keyId);
    if (cached) return cached.signer;
    // Another process may have added it (a rotation through the api, seen here by the scheduler).
    this.cache = undefined;
    return (await this.keys()).find((k) => k.info.keyId === keyId)?.signer;
  }

  /** Makes sure every online role has at least one key; safe when two processes race at first start. */
  async ensureKeys(roles: readonly OnlineRole[]): Promise<void> {
    const have = new Set((await this.keys()).map((k) => k.info.role));
    const missing = roles.filter((r) => !have.has(r));
    if (missing.length === 0) return;
    await this.write(
      [...(await this.readStored()), ...missing.map((role) => newKey(role))],
      /* exclusive when creating */ have.size === 0,
    );
  }

  /** Adds a new key for a role (rotation); the old one stays until a root without it is published. */
  async addKey(role: OnlineRole): Promise<OnlineKeyInfo> {
    const signer = Ed25519Signer.generate();
    const stored: StoredKey = { role, pem: signer.toPem(), createdAt: new Date().toISOString() };
    await this.write([...(await this.readStored()), stored], false);
    return { role, keyId: signer.keyId, createdAt: stored.createdAt };
  }

  /** Drops keys no longer listed anywhere (after a root rotation retired them). */
  async retain(keyIds: Set<string>): Promise<void> {
    const stored = await this.readStored();
    const kept = stored.filter((k) => keyIds.has(Ed25519Signer.fromPem(k.pem).keyId));
    if (kept.length !== stored.length) await this.write(kept, false);
  }

  private async readStored(): Promise<StoredKey[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const box = JSON.parse(text) as SealedBox;
    try {
      return JSON.parse(open(box, this.passphrase).toString('utf8')) as StoredKey[];
    } catch {
      throw new Error(`cannot open ${this.file}: wrong OTTER_KEY_PASSPHRASE or a damaged key file`);
    }
  }

  private async write(keys: StoredKey[], exclusive: boolean): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const body = JSON.stringify(seal(Buffer.from(JSON.stringify(keys)), this.passphrase));
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(tmp, body, { mode: 0o600 });
    if (exclusive) {
      // link() fails if the file exists: the first process to create the key set wins, the other adopts it.
      try {
        await link(tmp, this.file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        this.logger?.log('another process created the online keys first; using those');
      } finally {
        await unlink(tmp);
      }
    } else {
      await rename(tmp, this.file);
    }
    await chmod(this.file, 0o600);
    this.cache = undefined;
  }
}

function newKey(role: OnlineRole): StoredKey {
  return { role, pem: Ed25519Signer.generate().toPem(), createdAt: new Date().toISOString() };
}

/** Creates `file` with `content` unless it exists; readers never see it empty (written aside, then linked). */
async function writeExclusive(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, content, { mode: 0o600 });
  try {
    await link(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    await unlink(tmp);
  }
}
