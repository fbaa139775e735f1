import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext } from '@nestjs/common';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { DB, testDatabases, type Db } from '#otter/db';
import type { OtterEventOf } from '#otter/contracts';
import { DirectorMetadataStore } from '#otter/director';
import { EventReader } from '#otter/events';
import { IMAGE_REPOSITORY, ImageRepositoryInitializer, type TufRepository } from '#otter/tuf';
import type { SignedEnvelope } from '#otter/tuf-signing';
import { createScheduler } from './create-scheduler.js';

const dbs = await testDatabases();
const contexts: INestApplicationContext[] = [];
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

async function timestamps(db: Db): Promise<Array<{ version: number; body: string }>> {
  const rows = await db
    .selectFrom('tuf_metadata')
    .select(['version', 'body'])
    .where('repository', '=', 'image')
    .where('role', '=', 'timestamp')
    .orderBy('version')
    .execute();
  return rows.map((r) => ({ version: Number(r.version), body: r.body }));
}

async function freshPostgresUrl(): Promise<string> {
  const fresh = await testDatabases();
  dbs.push(...fresh);
  const pg = fresh.find((d) => d.config.dialect === 'postgres')!.config;
  return pg.dialect === 'postgres' ? pg.url : '';
}

describe.each(dbs)('TUF maintenance with two schedulers on $name', ({ name, config: database }) => {
  it('re-signs timestamp before it expires without a restart, and every timestamp names a real snapshot', async () => {
    const env = {
      OTTER_DATA_DIR: mkdtempSync(join(tmpdir(), 'otter-sched-')),
      OTTER_LOG_LEVEL: 'silent',
      OTTER_ENV: 'test',
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      OTTER_TUF_TIMESTAMP_TTL: '4',
      OTTER_TUF_RESIGN_EVERY: '1',
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    };
    const config = loadConfig(env);
    const a = await createScheduler(config);
    contexts.push(a);
    await a.get(ImageRepositoryInitializer).initialize();
    const b = await createScheduler(config);
    contexts.push(b);
    const db = a.get<Db>(DB);
    const first = (await timestamps(db)).at(-1)!.version;

    // Timestamps live 4 s and are re-signed in their second half: within ~6 s two more must exist.
    const deadline = Date.now() + 15_000;
    while ((await timestamps(db)).at(-1)!.version < first + 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
    }
    const all = await timestamps(db);
    expect(all.at(-1)!.version, `${name}: timestamp was re-signed`).toBeGreaterThanOrEqual(first + 2);
    const latest = JSON.parse(all.at(-1)!.body) as SignedEnvelope;
    expect(Date.parse(latest.signed.expires)).toBeGreaterThan(Date.now());

    for (const ts of all) {
      const meta = (
        JSON.parse(ts.body) as {
          signed: { meta: Record<string, { version: number; hashes: { sha256: string } }> };
        }
      ).signed.meta['snapshot.json']!;
      const snap = await db
        .selectFrom('tuf_metadata')
        .select('body')
        .where('repository', '=', 'image')
        .where('role', '=', 'snapshot')
        .where('version', '=', meta.version)
        .executeTakeFirstOrThrow();
      expect(createHash('sha256').update(snap.body).digest('hex')).toBe(meta.hashes.sha256);
    }
  }, 30_000);
});

// Two writers in one process cannot share a SQLite file (its busy wait blocks the only thread), so the race
// runs on PostgreSQL, the database a multi-scheduler deployment uses.
describe('TUF maintenance race on postgres', () => {
  it('two schedulers re-signing at the same moment never publish two timestamps with one version', async () => {
    const env = {
      OTTER_DATA_DIR: mkdtempSync(join(tmpdir(), 'otter-race-')),
      OTTER_LOG_LEVEL: 'silent',
      OTTER_ENV: 'test',
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      OTTER_TUF_RESIGN_EVERY: '3600',
      DATABASE_URL: await freshPostgresUrl(),
    };
    const config = loadConfig(env);
    const a = await createScheduler(config);
    const b = await createScheduler(config);
    contexts.push(a, b);
    await a.get(ImageRepositoryInitializer).initialize();
    const ra = a.get<TufRepository>(IMAGE_REPOSITORY);
    const rb = b.get<TufRepository>(IMAGE_REPOSITORY);
    const db = a.get<Db>(DB);
    const before = (await timestamps(db)).length;
    // "now" one year ahead: every role is due, so each call writes new targets, snapshot and timestamp versions.
    const future = Date.now() + 365 * 86_400_000;
    for (let round = 0; round < 5; round++) {
      await Promise.all([ra.resignExpiring(future), rb.resignExpiring(future)]);
    }
    const all = await timestamps(db);
    expect(all.length).toBe(before + 10);
    const versions = all.map((t) => t.version);
    expect(new Set(versions).size).toBe(versions.length);
    expect(versions).toEqual([...versions].sort((x, y) => x - y));
  }, 60_000);
});

describe('roles nearing expiry', () => {
  const DAY = 86_400;

  it('announces each role near its expiry once (image roles and the director root), and what was re-signed', async () => {
    // A database of its own: its image root must be signed with the short lifetime below.
    const fresh = await testDatabases();
    dbs.push(...fresh);
    const database = fresh[0].config;
    const config = loadConfig({
      OTTER_DATA_DIR: mkdtempSync(join(tmpdir(), 'otter-expiring-')),
      OTTER_LOG_LEVEL: 'silent',
      OTTER_ENV: 'test',
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      // Roots live 10 days: inside the 30-day warning from the start. Timestamps live 4 s: re-signed each second.
      OTTER_TUF_ROOT_TTL: String(10 * DAY),
      OTTER_TUF_TIMESTAMP_TTL: '4',
      OTTER_TUF_RESIGN_EVERY: '1',
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    });
    const scheduler = await createScheduler(config);
    contexts.push(scheduler);
    await scheduler.get(ImageRepositoryInitializer).initialize();
    const directorRootExpires = new Date(Date.now() + 5 * DAY * 1000).toISOString();
    await scheduler
      .get(DirectorMetadataStore, { strict: false })
      .insertRoot({ version: 1, expiresAt: directorRootExpires, body: '{}' });
    const reader = scheduler.get(EventReader, { strict: false });

    const events = async () => (await reader.range('0-0', 1000)).map((e) => e.event);
    const expiring = async () =>
      (await events()).filter((e): e is OtterEventOf<'tuf.role.expiring'> => e.kind === 'tuf.role.expiring');
    const deadline = Date.now() + 15_000;
    while ((await expiring()).length < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    // A few more re-sign jobs run: each role version is still announced once.
    await new Promise((r) => setTimeout(r, 2500));

    const announced = (await expiring()).map((e) => [e.repository, e.role, e.version]);
    expect(announced.sort()).toEqual([
      ['director', 'root', 1],
      ['image', 'root', 1],
    ]);
    const director = (await expiring()).find((e) => e.repository === 'director')!;
    expect(director.expires).toBe(directorRootExpires);
    expect(director.secondsLeft).toBeGreaterThan(5 * DAY - 60);
    const resigned = (await events()).filter((e) => e.kind === 'tuf.metadata.resigned');
    expect(resigned.length).toBeGreaterThanOrEqual(1);
    // One event per role version, from the repository once the re-sign committed: timestamps at least.
    expect(resigned.every((e) => e.repository === 'image')).toBe(true);
    const timestamps = resigned.filter((e) => e.role === 'timestamp');
    expect(timestamps.length).toBeGreaterThanOrEqual(1);
    expect(new Set(timestamps.map((e) => e.version)).size).toBe(timestamps.length);
  }, 30_000);

  it('finds every image role, delegated bins included, once its warning is reached', async () => {
    const scheduler = contexts.at(-1)!;
    const repository = scheduler.get<TufRepository>(IMAGE_REPOSITORY);
    // Nothing is re-signed this far ahead: every role is past its expiry.
    const future = Date.now() + 400 * DAY * 1000;
    const roles = (await repository.nearingExpiry(future)).map((r) => r.role);
    expect(roles).toEqual(expect.arrayContaining(['root', 'targets', 'snapshot', 'timestamp']));
    expect(roles.length).toBeGreaterThan(4);
    // Now, only the root (10 days, inside its 30-day warning): online roles are kept far from theirs.
    expect((await repository.nearingExpiry()).map((r) => r.role)).toEqual(['root']);
  });
});
