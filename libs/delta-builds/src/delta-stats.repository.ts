import { Inject, Injectable } from '@nestjs/common';
import { sql } from 'kysely';
import { DB, type Db } from '#otter/db';

/** Read-only aggregates over delta builds (the metrics' scrape-time gauges): a small table, one row per build. */
@Injectable()
export class DeltaStatsRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  async buildsByState(): Promise<Array<{ state: string; builds: number }>> {
    const rows = await this.db
      .selectFrom('delta_builds')
      .select((eb) => ['state', eb.fn.countAll<number | string>().as('n')])
      .groupBy('state')
      .execute();
    return rows.map((r) => ({ state: r.state, builds: Number(r.n) }));
  }

  /** Full image bytes minus patch bytes over published builds, by hardware id. */
  async buildBytesSaved(): Promise<Array<{ hardwareId: string; bytes: number }>> {
    const rows = await this.db
      .selectFrom('delta_builds')
      .where('state', '=', 'published')
      .select([
        'hardware_id',
        sql<number | string>`coalesce(sum(cast(to_length as bigint) - cast(patch_length as bigint)), 0)`.as(
          'saved',
        ),
      ])
      .groupBy('hardware_id')
      .execute();
    return rows.map((r) => ({ hardwareId: r.hardware_id, bytes: Number(r.saved) }));
  }
}
