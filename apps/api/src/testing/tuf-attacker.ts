import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '#otter/db';
import { Ed25519Signer, OnlineKeyStore, type RootSigned, type SignedEnvelope } from '#otter/tuf-signing';

type Signed = SignedEnvelope['signed'];

/** A repository's online keys, as an attacker who read a development install's data dir holds them. */
export function stolenOnlineKeys(dataDir: string, repository: 'image' | 'director'): OnlineKeyStore {
  const keysDir = join(dataDir, 'keys');
  const passphrase = readFileSync(join(keysDir, 'dev-passphrase'), 'utf8').trim();
  return new OnlineKeyStore(keysDir, repository, passphrase);
}

/**
 * Plays the attacker who controls the server's storage (and, where a test says so, its online keys): it
 * rewrites metadata rows directly, bypassing every check Otter makes, so the tests show what the client does.
 */
export class TufAttacker {
  constructor(
    private readonly db: Db,
    private readonly dataDir: string,
  ) {}

  async latest(role: string): Promise<{ version: number; body: string; envelope: SignedEnvelope }> {
    const row = await this.db
      .selectFrom('tuf_metadata')
      .select(['version', 'body'])
      .where('repository', '=', 'image')
      .where('role', '=', role)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    return { version: Number(row.version), body: row.body, envelope: JSON.parse(row.body) as SignedEnvelope };
  }

  async body(role: string, version: number): Promise<string> {
    const row = await this.db
      .selectFrom('tuf_metadata')
      .select('body')
      .where('repository', '=', 'image')
      .where('role', '=', role)
      .where('version', '=', version)
      .executeTakeFirstOrThrow();
    return row.body;
  }

  /** Signs with the server's own online key for the role, as an attacker who stole it would. */
  async signWithOnlineKey(role: 'timestamp' | 'snapshot' | 'targets', signed: Signed): Promise<string> {
    const root = (await this.latest('root')).envelope.signed as RootSigned;
    const signer = (await stolenOnlineKeys(this.dataDir, 'image').signer(root.roles[role].keyids[0]!))!;
    return JSON.stringify({ signatures: [signer.sign(signed)], signed });
  }

  signWith(signers: Ed25519Signer[], signed: Signed): string {
    return JSON.stringify({ signatures: signers.map((s) => s.sign(signed)), signed });
  }

  async insert(role: string, version: number, body: string): Promise<void> {
    await this.db
      .insertInto('tuf_metadata')
      .values({
        repository: 'image',
        role,
        version,
        expires_at: '2099-01-01T00:00:00Z',
        body,
        created_at: new Date().toISOString(),
      })
      .execute();
  }

  async replace(role: string, version: number, body: string): Promise<void> {
    await this.db
      .updateTable('tuf_metadata')
      .set({ body })
      .where('repository', '=', 'image')
      .where('role', '=', role)
      .where('version', '=', version)
      .execute();
  }

  async deleteFrom(role: string, fromVersion: number): Promise<void> {
    await this.db
      .deleteFrom('tuf_metadata')
      .where('repository', '=', 'image')
      .where('role', '=', role)
      .where('version', '>=', fromVersion)
      .execute();
  }
}
