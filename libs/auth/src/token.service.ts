import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import type { Role, TokenDto, TokenListDto } from '#otter/contracts';
import { OtterError } from '#otter/errors';
import { ApiTokenRepository, type ApiTokenRecord } from './api-token.repository.js';
import type { Principal } from './principal.js';
import { generateToken, hashesEqual, hashToken, isWellFormedToken } from './token-format.js';
import { validateRole, validateTokenName } from './token-validation.js';

export const BOOTSTRAP_ADMIN_TOKEN_NAME = 'bootstrap-admin';
export const ADMIN_TOKEN_FILE = 'admin-token';

/** Issues, checks and revokes management API tokens. The secret leaves this class once, at creation. */
@Injectable()
export class TokenService {
  constructor(private readonly tokens: ApiTokenRepository) {}

  async create(name: string, role: Role): Promise<{ dto: TokenDto; token: string }> {
    const record = this.newRecord(validateTokenName(name), validateRole(role));
    await this.tokens.insert(record.record);
    return { dto: toDto(record.record), token: record.token };
  }

  /**
   * Unknown, revoked and malformed tokens get the same error, so a caller learns nothing about which
   * tokens exist.
   */
  async authenticate(token: string): Promise<Principal> {
    const rejected = new OtterError('UNAUTHENTICATED', 'invalid or revoked token');
    if (!isWellFormedToken(token)) throw rejected;
    const hash = hashToken(token);
    const record = await this.tokens.findByHash(hash);
    // The lookup is by the digest of a 256-bit secret, so its timing says nothing useful; the explicit
    // constant-time comparison guards against a database that matched loosely (collation, truncation).
    if (!record || !hashesEqual(record.tokenHash, hash) || record.revokedAt !== null) throw rejected;
    return { tokenId: record.id, name: record.name, role: record.role };
  }

  async list(): Promise<TokenListDto> {
    return { tokens: (await this.tokens.list()).map(toDto) };
  }

  /** Revoking an already revoked token is a no-op that keeps the first revocation time. */
  async revoke(id: string): Promise<void> {
    if (!(await this.tokens.revoke(id, new Date().toISOString()))) {
      throw new OtterError('NOT_FOUND', 'no token with this id', { id });
    }
  }

  /**
   * First boot: with no usable admin token nobody could manage the service, so create one and hand it
   * over through `$dataDir/admin-token` (0600). An existing admin token means someone already holds
   * one; a missing file is then deliberate (read and deleted) and is not recreated. Returns true when
   * a token was created.
   */
  async ensureBootstrapAdminToken(dataDir: string): Promise<boolean> {
    if (await this.tokens.hasActiveTokenWithRole('admin')) return false;
    const { record, token } = this.newRecord(BOOTSTRAP_ADMIN_TOKEN_NAME, 'admin');
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const finalPath = join(dataDir, ADMIN_TOKEN_FILE);
    const tempPath = join(dataDir, `.${ADMIN_TOKEN_FILE}.${randomBytes(6).toString('hex')}.tmp`);
    // The file is written before the row exists: a token in the database that nobody can read would
    // lock everyone out, because the next boot sees an admin and creates nothing.
    try {
      await writePrivateFile(tempPath, `${token}\n`);
      await this.tokens.insert(record);
    } catch (error) {
      await unlink(tempPath).catch(() => undefined);
      throw error;
    }
    try {
      await rename(tempPath, finalPath);
    } catch (error) {
      await this.tokens.revoke(record.id, new Date().toISOString()).catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
      throw error;
    }
    return true;
  }

  private newRecord(name: string, role: Role): { record: ApiTokenRecord; token: string } {
    const token = generateToken();
    return {
      token,
      record: {
        id: randomUUID(),
        name,
        role,
        tokenHash: hashToken(token),
        createdAt: new Date().toISOString(),
        revokedAt: null,
      },
    };
  }
}

function toDto(record: ApiTokenRecord): TokenDto {
  return {
    id: record.id,
    name: record.name,
    role: record.role,
    createdAt: record.createdAt,
    revokedAt: record.revokedAt,
  };
}

async function writePrivateFile(path: string, content: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    // The mode given to open() is reduced by the umask; set it explicitly so it is exactly 0600.
    await handle.chmod(0o600);
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}
