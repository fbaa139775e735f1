import { Inject, Injectable } from '@nestjs/common';
import type { Role } from '#otter/contracts';
import { DB, type ApiTokenTable, type Db } from '#otter/db';
import { isRole } from './roles.js';

/** One stored management API token. Only the SHA-256 of the secret is ever kept. */
export interface ApiTokenRecord {
  id: string;
  name: string;
  role: Role;
  tokenHash: string;
  createdAt: string;
  revokedAt: string | null;
}

/** The only code that reads or writes `api_tokens`. */
@Injectable()
export class ApiTokenRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  async insert(record: ApiTokenRecord): Promise<void> {
    await this.db
      .insertInto('api_tokens')
      .values({
        id: record.id,
        name: record.name,
        role: record.role,
        token_hash: record.tokenHash,
        created_at: record.createdAt,
        revoked_at: record.revokedAt,
      })
      .execute();
  }

  async findByHash(tokenHash: string): Promise<ApiTokenRecord | undefined> {
    const row = await this.db
      .selectFrom('api_tokens')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  async findById(id: string): Promise<ApiTokenRecord | undefined> {
    const row = await this.db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  /** Every token, revoked ones included, oldest first. */
  async list(): Promise<ApiTokenRecord[]> {
    const rows = await this.db
      .selectFrom('api_tokens')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toRecord);
  }

  async hasActiveTokenWithRole(role: Role): Promise<boolean> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select('id')
      .where('role', '=', role)
      .where('revoked_at', 'is', null)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Marks the token revoked unless it already is; false when no token has this id. */
  async revoke(id: string, revokedAt: string): Promise<boolean> {
    await this.db
      .updateTable('api_tokens')
      .set({ revoked_at: revokedAt })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
    return (await this.findById(id)) !== undefined;
  }
}

function toRecord(row: ApiTokenTable): ApiTokenRecord {
  // A role this code does not know must never grant anything: refuse the row rather than guess.
  if (!isRole(row.role)) throw new Error(`api_tokens row ${row.id} has an unknown role "${row.role}"`);
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    tokenHash: row.token_hash,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}
