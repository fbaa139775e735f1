import { Inject, Injectable } from '@nestjs/common';
import type { DeltaBuildState } from '#otter/contracts';
import { DB, type Db, type DeltaBuildTable } from '#otter/db';

export interface ImageRef {
  version: string;
  sha256: string;
  length: number;
}

export interface DeltaBuildRecord {
  id: string;
  hardwareId: string;
  from: ImageRef;
  to: ImageRef;
  targetPath: string;
  state: DeltaBuildState;
  progress: number;
  patchLength: number | null;
  patchSha256: string | null;
  blobKey: string | null;
  buildSeconds: number | null;
  peakRssBytes: number | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

export type NewDeltaBuild = Pick<DeltaBuildRecord, 'id' | 'hardwareId' | 'from' | 'to' | 'targetPath'>;

/** States a build never leaves on its own (a failed one only through an explicit new request). */
export const FINAL_STATES: readonly DeltaBuildState[] = ['published', 'too-large', 'failed'];
const DONE: DeltaBuildState[] = ['published', 'too-large'];

/** The only place that reads or writes delta_builds (and reads the fleet's running versions). */
@Injectable()
export class DeltaBuildRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  /** Inserts the build unless its id exists; either way returns the stored row. */
  async insertIfAbsent(build: NewDeltaBuild): Promise<{ record: DeltaBuildRecord; created: boolean }> {
    const existing = await this.get(build.id);
    if (existing) return { record: existing, created: false };
    const now = new Date().toISOString();
    // Two triggers of one pair at the same moment: the other insert wins, and that row is the build. ON CONFLICT
    // rather than catching the violation, which would abort an enclosing transaction on PostgreSQL (an audited
    // request runs in one).
    const inserted = await this.db
      .insertInto('delta_builds')
      .values({
        id: build.id,
        hardware_id: build.hardwareId,
        from_version: build.from.version,
        to_version: build.to.version,
        from_sha256: build.from.sha256,
        to_sha256: build.to.sha256,
        from_length: build.from.length,
        to_length: build.to.length,
        target_path: build.targetPath,
        state: 'queued',
        progress: 0,
        patch_length: null,
        patch_sha256: null,
        blob_key: null,
        build_seconds: null,
        peak_rss_bytes: null,
        error: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return {
      record: (await this.get(build.id))!,
      created: Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0,
    };
  }

  async get(id: string): Promise<DeltaBuildRecord | undefined> {
    const row = await this.db.selectFrom('delta_builds').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  async findByTargetPath(targetPath: string): Promise<DeltaBuildRecord | undefined> {
    const row = await this.db
      .selectFrom('delta_builds')
      .selectAll()
      .where('target_path', '=', targetPath)
      .orderBy('created_at')
      .executeTakeFirst();
    return row && toRecord(row);
  }

  /** Newest first. */
  async list(hardwareId?: string): Promise<DeltaBuildRecord[]> {
    let q = this.db
      .selectFrom('delta_builds')
      .selectAll()
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc');
    if (hardwareId) q = q.where('hardware_id', '=', hardwareId);
    return (await q.execute()).map(toRecord);
  }

  async inState(state: DeltaBuildState): Promise<DeltaBuildRecord[]> {
    return (
      await this.db
        .selectFrom('delta_builds')
        .selectAll()
        .where('state', '=', state)
        .orderBy('created_at')
        .execute()
    ).map(toRecord);
  }

  /** Verified and stored, waiting for the next publish batch. */
  async readyToPublish(): Promise<DeltaBuildRecord[]> {
    return (
      await this.db
        .selectFrom('delta_builds')
        .selectAll()
        .where('state', '=', 'verifying')
        .where('blob_key', 'is not', null)
        .orderBy('created_at')
        .execute()
    ).map(toRecord);
  }

  /**
   * Moves an unfinished build to `state` with at least `progress` percent. Progress never goes back (extents
   * finish in any order on many workers) and a finished build is never touched.
   */
  async advance(id: string, state: 'building' | 'verifying', progress: number): Promise<void> {
    await this.db
      .updateTable('delta_builds')
      .set({ state, progress: Math.floor(progress), updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('state', 'not in', [...FINAL_STATES])
      .where('progress', '<=', Math.floor(progress))
      .execute();
  }

  /** The patch is verified and stored under blobKey; it waits for a publish batch. */
  async markStored(
    id: string,
    patch: { length: number; sha256: string; blobKey: string; buildSeconds: number; peakRssBytes: number },
  ): Promise<void> {
    await this.db
      .updateTable('delta_builds')
      .set({
        state: 'verifying',
        progress: 99,
        patch_length: patch.length,
        patch_sha256: patch.sha256,
        blob_key: patch.blobKey,
        build_seconds: patch.buildSeconds,
        error: null,
        updated_at: new Date().toISOString(),
      })
      .where('id', '=', id)
      .where('state', 'not in', DONE)
      .execute();
    await this.recordPeakRss(id, patch.peakRssBytes);
  }

  /** Published: the patch recorded is the one the TUF target signs. */
  async markPublished(id: string, patch: { length: number; sha256: string; blobKey: string }): Promise<void> {
    await this.db
      .updateTable('delta_builds')
      .set({
        state: 'published',
        progress: 100,
        patch_length: patch.length,
        patch_sha256: patch.sha256,
        blob_key: patch.blobKey,
        error: null,
        updated_at: new Date().toISOString(),
      })
      .where('id', '=', id)
      .execute();
  }

  async markTooLarge(
    id: string,
    result: { patchLength: number; buildSeconds: number; peakRssBytes: number; reason: string },
  ): Promise<void> {
    await this.db
      .updateTable('delta_builds')
      .set({
        state: 'too-large',
        progress: 100,
        patch_length: result.patchLength,
        build_seconds: result.buildSeconds,
        error: result.reason,
        updated_at: new Date().toISOString(),
      })
      .where('id', '=', id)
      .where('state', 'not in', DONE)
      .execute();
    await this.recordPeakRss(id, result.peakRssBytes);
  }

  /** Failed for good; never overrides a published or too-large result (a late failure of a stale job). */
  async markFailed(id: string, reason: string): Promise<void> {
    await this.db
      .updateTable('delta_builds')
      .set({ state: 'failed', error: reason.slice(0, 2000), updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('state', 'not in', DONE)
      .execute();
  }

  /** A note on an unfinished build (e.g. why publishing is retried) without changing its state. */
  async noteError(id: string, reason: string): Promise<void> {
    await this.db
      .updateTable('delta_builds')
      .set({ error: reason.slice(0, 2000), updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('state', 'not in', FINAL_STATES)
      .execute();
  }

  /** A failed build requested again starts over; returns whether it was failed. */
  async requeueFailed(id: string): Promise<boolean> {
    const result = await this.db
      .updateTable('delta_builds')
      .set({
        state: 'queued',
        progress: 0,
        error: null,
        patch_length: null,
        patch_sha256: null,
        blob_key: null,
        build_seconds: null,
        updated_at: new Date().toISOString(),
      })
      .where('id', '=', id)
      .where('state', '=', 'failed')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async recordPeakRss(id: string, bytes: number): Promise<void> {
    await this.db
      .updateTable('delta_builds')
      .set({ peak_rss_bytes: bytes })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('peak_rss_bytes', 'is', null), eb('peak_rss_bytes', '<', bytes)]))
      .execute();
  }

  /**
   * Versions the active nodes of a hardware id report running, most common first. A read of the nodes table
   * (owned by libs/nodes) as one aggregate: listing every node through NodeService would cost a query per node.
   */
  async runningVersions(hardwareId: string): Promise<Array<{ version: string; nodes: number }>> {
    const rows = await this.db
      .selectFrom('nodes')
      .select(['running_version', (eb) => eb.fn.countAll<number | string>().as('n')])
      .where('hardware_id', '=', hardwareId)
      .where('state', '=', 'active')
      .where('running_version', 'is not', null)
      .groupBy('running_version')
      .execute();
    return rows
      .map((r) => ({ version: r.running_version!, nodes: Number(r.n) }))
      .sort((a, b) => b.nodes - a.nodes || a.version.localeCompare(b.version));
  }
}

const nullableNumber = (v: number | string | null): number | null => (v === null ? null : Number(v));

function toRecord(r: DeltaBuildTable): DeltaBuildRecord {
  return {
    id: r.id,
    hardwareId: r.hardware_id,
    from: { version: r.from_version, sha256: r.from_sha256, length: Number(r.from_length) },
    to: { version: r.to_version, sha256: r.to_sha256, length: Number(r.to_length) },
    targetPath: r.target_path,
    state: r.state as DeltaBuildState,
    progress: Number(r.progress),
    patchLength: nullableNumber(r.patch_length),
    patchSha256: r.patch_sha256,
    blobKey: r.blob_key,
    buildSeconds: r.build_seconds === null ? null : Number(r.build_seconds),
    peakRssBytes: nullableNumber(r.peak_rss_bytes),
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
