import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext } from '@nestjs/common';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '#otter/config';
import { DB, testDatabases, type Db } from '#otter/db';
import { createScheduler } from './create-scheduler.js';

const dbs = await testDatabases();
const contexts: INestApplicationContext[] = [];
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

const ago = (seconds: number): string => new Date(Date.now() - seconds * 1000).toISOString();

async function seed(db: Db, nodeId: string, at: string, tag: string): Promise<void> {
  await db
    .insertInto('device_reports')
    .values({
      id: randomUUID(),
      node_id: nodeId,
      kind: 'health',
      ok: 1,
      event: tag,
      detail: '',
      reported_at: at,
      created_at: at,
    })
    .execute();
  await db
    .insertInto('attestation_verdicts')
    .values({
      id: randomUUID(),
      node_id: nodeId,
      passed: 1,
      reason: tag,
      pcr_values: '{}',
      release_version: null,
      created_at: at,
    })
    .execute();
  await db
    .insertInto('downloads')
    .values({
      id: randomUUID(),
      node_id: nodeId,
      hardware_id: 'rpi4',
      version: tag,
      method: 'full',
      bytes_downloaded: 1,
      full_bytes: 1,
      created_at: at,
    })
    .execute();
}

describe.each(dbs)('retention purge by the scheduler on $name', ({ config: database }) => {
  it('deletes old reports, verdicts (not a node’s latest), downloads and long-expired enrollments, on its own', async () => {
    const config = loadConfig({
      OTTER_DATA_DIR: mkdtempSync(join(tmpdir(), 'otter-retention-')),
      OTTER_LOG_LEVEL: 'silent',
      OTTER_ENV: 'test',
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
      OTTER_RETENTION_EVERY: '1',
      OTTER_RETENTION_REPORTS_MAX_AGE: '3600',
      OTTER_RETENTION_VERDICTS_MAX_AGE: '3600',
      OTTER_RETENTION_DOWNLOADS_MAX_AGE: '3600',
      OTTER_RETENTION_ENROLLMENTS_MAX_AGE: '3600',
    });
    const scheduler = await createScheduler(config);
    contexts.push(scheduler);
    const db = scheduler.get<Db>(DB);
    const active = randomUUID();
    const quiet = randomUUID();
    await seed(db, active, ago(7200), 'old');
    await seed(db, active, ago(60), 'new');
    await seed(db, quiet, ago(7200), 'only');
    const enrollment = (id: string, expiresAt: string) => ({
      id,
      hardware_id: 'rpi4',
      ek_kind: 'ecc',
      ek_public: 'AA==',
      ek_public_sha256: 'a'.repeat(64),
      ek_cert_serial: '01',
      ek_cert_issuer: 'CN=x',
      ak_public: 'AA==',
      secret_sha256: 'b'.repeat(64),
      nonce: 'c'.repeat(64),
      running_version: null,
      attempts: 0,
      state: 'challenged',
      expires_at: expiresAt,
      created_at: ago(8000),
    });
    const stale = randomUUID();
    const recent = randomUUID();
    await db
      .insertInto('enrollments')
      .values([enrollment(stale, ago(7200)), enrollment(recent, ago(60))])
      .execute();

    const column = async (table: 'device_reports' | 'attestation_verdicts', name: 'event' | 'reason') =>
      (
        await db
          .selectFrom(table as 'device_reports')
          .select(`${name as 'event'} as v`)
          .orderBy('v')
          .execute()
      ).map((r) => r.v);
    await vi.waitFor(
      async () => {
        expect(await column('device_reports', 'event')).toEqual(['new']);
        expect(await column('attestation_verdicts', 'reason')).toEqual(['new', 'only']);
        expect((await db.selectFrom('downloads').select('version').execute()).map((r) => r.version)).toEqual([
          'new',
        ]);
        expect((await db.selectFrom('enrollments').select('id').execute()).map((r) => r.id)).toEqual([
          recent,
        ]);
      },
      { timeout: 15_000, interval: 250 },
    );
  }, 30_000);
});
