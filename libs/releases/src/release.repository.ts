import { Inject, Injectable } from '@nestjs/common';
import type { ReleaseDto } from '#otter/contracts';
import { DB, type Db, type ReleaseTable } from '#otter/db';

export type NewRelease = Omit<ReleaseDto, 'createdAt'> & { blobKey: string };

/** The only place that reads or writes the releases table. */
@Injectable()
export class ReleaseRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  async exists(hardwareId: string, version: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('releases')
      .select('id')
      .where('hardware_id', '=', hardwareId)
      .where('version', '=', version)
      .executeTakeFirst();
    return !!row;
  }

  async byId(id: string): Promise<ReleaseDto | undefined> {
    const row = await this.db.selectFrom('releases').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toDto(row);
  }

  async find(hardwareId: string, version: string): Promise<ReleaseDto | undefined> {
    const row = await this.db
      .selectFrom('releases')
      .selectAll()
      .where('hardware_id', '=', hardwareId)
      .where('version', '=', version)
      .executeTakeFirst();
    return row && toDto(row);
  }

  async insert(release: NewRelease): Promise<ReleaseDto> {
    const createdAt = new Date().toISOString();
    await this.db
      .insertInto('releases')
      .values({
        id: release.id,
        hardware_id: release.hardwareId,
        version: release.version,
        target_path: release.targetPath,
        sha256: release.sha256,
        length: release.length,
        blob_key: release.blobKey,
        measurements: JSON.stringify(release.measurements),
        notes: release.notes,
        created_at: createdAt,
        created_by: release.createdBy,
      })
      .execute();
    const { blobKey: _blobKey, ...dto } = release;
    return { ...dto, createdAt };
  }

  async list(hardwareId?: string): Promise<ReleaseDto[]> {
    let q = this.db.selectFrom('releases').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc');
    if (hardwareId) q = q.where('hardware_id', '=', hardwareId);
    return (await q.execute()).map(toDto);
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('releases')
      .select(({ fn }) => fn.countAll<string | number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

function toDto(r: ReleaseTable): ReleaseDto {
  return {
    id: r.id,
    hardwareId: r.hardware_id,
    version: r.version,
    targetPath: r.target_path,
    sha256: r.sha256,
    length: Number(r.length),
    measurements: JSON.parse(r.measurements) as Record<string, string>,
    notes: r.notes,
    createdAt: r.created_at,
    createdBy: r.created_by,
  };
}
