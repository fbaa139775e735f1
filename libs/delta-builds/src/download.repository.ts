import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { ExpressionBuilder } from 'kysely';
import type { NodeDownloadDto } from '#otter/contracts';
import { DB, type Database, type Db } from '#otter/db';
import { NodeHistoryLimits } from '#otter/retention';

export interface NewDownload {
  nodeId: string;
  hardwareId: string;
  /** The release the node downloaded (the delta's target version for a delta). */
  version: string;
  method: 'delta' | 'full';
  bytesDownloaded: number;
  fullBytes: number;
}

export interface DownloadTotals {
  downloads: number;
  bytesDownloaded: number;
  fullBytes: number;
  bytesSaved: number;
}

/** The only place that reads or writes downloads. */
@Injectable()
export class DownloadRepository {
  constructor(
    @Inject(DB) private readonly db: Db,
    private readonly limits: NodeHistoryLimits,
  ) {}

  async insert(download: NewDownload): Promise<void> {
    await this.db
      .insertInto('downloads')
      .values({
        id: randomUUID(),
        node_id: download.nodeId,
        hardware_id: download.hardwareId,
        version: download.version,
        method: download.method,
        bytes_downloaded: download.bytesDownloaded,
        full_bytes: download.fullBytes,
        created_at: new Date().toISOString(),
      })
      .execute();
    await this.limits.afterInsert('downloads', download.nodeId);
  }

  /** The node's newest `limit` downloads, newest first. */
  async forNode(nodeId: string, limit: number): Promise<NodeDownloadDto[]> {
    const rows = await this.db
      .selectFrom('downloads')
      .selectAll()
      .where('node_id', '=', nodeId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      version: r.version,
      method: r.method === 'delta' ? 'delta' : 'full',
      bytesDownloaded: Number(r.bytes_downloaded),
      fullBytes: Number(r.full_bytes),
      at: r.created_at,
    }));
  }

  async totalsByRelease(
    hardwareId?: string,
  ): Promise<Array<{ hardwareId: string; version: string } & DownloadTotals>> {
    let q = this.db
      .selectFrom('downloads')
      .select((eb) => [
        'hardware_id',
        'version',
        eb.fn.countAll<number | string>().as('n'),
        byteSum(eb, 'bytes_downloaded').as('downloaded'),
        byteSum(eb, 'full_bytes').as('full'),
      ])
      .groupBy(['hardware_id', 'version'])
      .orderBy('hardware_id')
      .orderBy('version');
    if (hardwareId) q = q.where('hardware_id', '=', hardwareId);
    return (await q.execute()).map((r) => ({
      hardwareId: r.hardware_id,
      version: r.version,
      ...totals(r),
    }));
  }

  async totalsByNode(hardwareId?: string): Promise<Array<{ nodeId: string } & DownloadTotals>> {
    let q = this.db
      .selectFrom('downloads')
      .select((eb) => [
        'node_id',
        eb.fn.countAll<number | string>().as('n'),
        byteSum(eb, 'bytes_downloaded').as('downloaded'),
        byteSum(eb, 'full_bytes').as('full'),
      ])
      .groupBy('node_id')
      .orderBy('node_id');
    if (hardwareId) q = q.where('hardware_id', '=', hardwareId);
    return (await q.execute()).map((r) => ({ nodeId: r.node_id, ...totals(r) }));
  }
}

/**
 * SUM over a byte column, as a double on both dialects. SQLite's integer SUM raises "integer overflow" past
 * 2^63 and PostgreSQL's SUM(bigint) is an exact numeric that JSON cannot carry anyway; a double sum never
 * fails, and is exact for every total up to 2^53 (what a JSON number holds exactly).
 */
function byteSum(eb: ExpressionBuilder<Database, 'downloads'>, column: 'bytes_downloaded' | 'full_bytes') {
  return eb.fn.sum<number | string>(eb.cast<number>(column, 'double precision'));
}

function totals(r: {
  n: number | string;
  downloaded: number | string;
  full: number | string;
}): DownloadTotals {
  const bytesDownloaded = Number(r.downloaded);
  const fullBytes = Number(r.full);
  return { downloads: Number(r.n), bytesDownloaded, fullBytes, bytesSaved: fullBytes - bytesDownloaded };
}
