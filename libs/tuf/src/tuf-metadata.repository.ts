import { Inject, Injectable } from '@nestjs/common';
import { DB, type Db } from '#otter/db';

export interface StoredMetadata {
  role: string;
  version: number;
  expiresAt: string;
  body: string;
}

export interface StoredTarget {
  path: string;
  bin: string;
  length: number;
  sha256: string;
  custom: Record<string, unknown>;
  blobKey: string;
}

export interface MetadataWrite {
  role: string;
  version: number;
  expiresAt: string;
  body: string;
}

/** The only place that reads or writes TUF metadata and target rows. */
@Injectable()
export class TufMetadataRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  async get(repository: string, role: string, version: number): Promise<StoredMetadata | undefined> {
    const row = await this.db
      .selectFrom('tuf_metadata')
      .select(['role', 'version', 'expires_at', 'body'])
      .where('repository', '=', repository)
      .where('role', '=', role)
      .where('version', '=', version)
      .executeTakeFirst();
    return row && toStoredMetadata(row);
  }

  async latest(repository: string, role: string): Promise<StoredMetadata | undefined> {
    const row = await this.db
      .selectFrom('tuf_metadata')
      .select(['role', 'version', 'expires_at', 'body'])
      .where('repository', '=', repository)
      .where('role', '=', role)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && toStoredMetadata(row);
  }

  /** Latest version and expiry of every role in the repository. */
  async heads(repository: string): Promise<Map<string, { version: number; expiresAt: string }>> {
    const rows = await this.db
      .selectFrom('tuf_metadata as m')
      .select(['m.role', 'm.version', 'm.expires_at'])
      .where('m.repository', '=', repository)
      .where(({ eb, selectFrom }) =>
        eb(
          'm.version',
          '=',
          selectFrom('tuf_metadata as n')
            .select(({ fn }) => fn.max('n.version').as('v'))
            .whereRef('n.repository', '=', 'm.repository')
            .whereRef('n.role', '=', 'm.role'),
        ),
      )
      .execute();
    return new Map(rows.map((r) => [r.role, { version: Number(r.version), expiresAt: r.expires_at }]));
  }

  async targetsInBins(repository: string, bins: string[]): Promise<StoredTarget[]> {
    if (bins.length === 0) return [];
    const rows = await this.db
      .selectFrom('tuf_targets')
      .select(['path', 'bin', 'length', 'sha256', 'custom', 'blob_key'])
      .where('repository', '=', repository)
      .where('bin', 'in', bins)
      .orderBy('path')
      .execute();
    return rows.map(toStoredTarget);
  }

  async targetExists(repository: string, path: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('tuf_targets')
      .select('path')
      .where('repository', '=', repository)
      .where('path', '=', path)
      .executeTakeFirst();
    return !!row;
  }

  async findTargetByHash(
    repository: string,
    path: string,
    sha256: string,
  ): Promise<StoredTarget | undefined> {
    const rows = await this.db
      .selectFrom('tuf_targets')
      .select(['path', 'bin', 'length', 'sha256', 'custom', 'blob_key'])
      .where('repository', '=', repository)
      .where('path', '=', path)
      .where('sha256', '=', sha256)
      .execute();
    return rows[0] && toStoredTarget(rows[0]);
  }

  async countTargets(repository: string): Promise<number> {
    const row = await this.db
      .selectFrom('tuf_targets')
      .select(({ fn }) => fn.countAll<string | number>().as('n'))
      .where('repository', '=', repository)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * Stores new targets and new metadata versions in one transaction. A concurrent publisher that wrote the
   * same role version first makes this fail with a unique violation, and nothing of this call is kept.
   */
  async commit(repository: string, targets: StoredTarget[], metadata: MetadataWrite[]): Promise<void> {
    const now = new Date().toISOString();
    await this.db.transaction().execute(async (tx) => {
      if (targets.length > 0) {
        await tx
          .insertInto('tuf_targets')
          .values(
            targets.map((t) => ({
              repository,
              path: t.path,
              bin: t.bin,
              length: t.length,
              sha256: t.sha256,
              custom: JSON.stringify(t.custom),
              blob_key: t.blobKey,
              created_at: now,
            })),
          )
          .execute();
      }
      for (const m of metadata) {
        await tx
          .insertInto('tuf_metadata')
          .values({
            repository,
            role: m.role,
            version: m.version,
            expires_at: m.expiresAt,
            body: m.body,
            created_at: now,
          })
          .execute();
      }
    });
  }
}

function toStoredMetadata(row: {
  role: string;
  version: number;
  expires_at: string;
  body: string;
}): StoredMetadata {
  return { role: row.role, version: Number(row.version), expiresAt: row.expires_at, body: row.body };
}

function toStoredTarget(r: {
  path: string;
  bin: string;
  length: number | string;
  sha256: string;
  custom: string;
  blob_key: string;
}): StoredTarget {
  return {
    path: r.path,
    bin: r.bin,
    length: Number(r.length),
    sha256: r.sha256,
    custom: JSON.parse(r.custom) as Record<string, unknown>,
    blobKey: r.blob_key,
  };
}
