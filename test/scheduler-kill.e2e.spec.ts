import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { RolloutDto } from '#otter/contracts';
import { seedNodeRow, testDatabases, type Db } from '#otter/db';
import { RolloutFixtures } from '../apps/api/src/rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';

// "A scheduler killed mid-tick loses nothing", with real SIGKILLs of the built scheduler running as its own
// process. The api (in-process) starts a rollout whose first wave is thousands of nodes with fresh passing
// verdicts, so the tick that admits it claims the rollout and writes thousands of director_assignments and
// rollout_nodes rows in one transaction. Only then is a scheduler started, and SIGKILLed inside that
// transaction; after each kill the database must hold none of the tick (or, had it committed first, all of
// it). Then a fresh scheduler process must finish the job: the wave admitted exactly once, nothing else.
//
// How a kill lands inside the tick's transaction, with no hook in production code:
// - PostgreSQL, first kill: the test holds a row lock (SELECT ... FOR UPDATE) on one rollout_nodes row of
//   the wave. The tick claims the rollout, inserts every director assignment, then blocks in its UPDATE of
//   rollout_nodes on that row. The test sees the scheduler's backend (found by the application_name in its
//   DATABASE_URL) waiting on the lock inside its transaction and kills it there: deterministic.
// - PostgreSQL, second kill (a fresh process, no lock): killed as soon as pg_stat_activity shows its backend
//   running an INSERT into director_assignments or an UPDATE of rollout_nodes inside the open transaction,
//   polled every 2 ms; in practice it is caught in the middle of inserting the assignments.
// - SQLite has no row locks, and a writer holding the write lock waits for nothing, so the tick cannot be
//   held at a chosen statement. After startup the tick is the scheduler's only writer (the api sits idle),
//   so the test probes the write lock (BEGIN IMMEDIATE, no busy timeout) about every millisecond: held means
//   the tick has run its claim and not yet committed. Two kills, each of a fresh process: at once when the
//   lock is first seen (just after the claim), and 50 ms later (about half way through the transaction
//   here), if the lock is still held then.
// Whether a kill landed inside is read from the state after it (nothing committed although the transaction
// was seen open just before). The first kill on each database must have landed inside (on SQLite a race of
// microseconds, between the probe and the kill, against a write transaction that here lasts about 100 ms).
// A later kill may find the tick committed; the state must then hold all of it, and the kills stop there.

const distRoot = process.env.OTTER_TEST_DIST_ROOT ?? fileURLToPath(new URL('..', import.meta.url));
const schedulerMain = join(distRoot, 'dist/apps/scheduler/src/main.js');

const HW = 'rpi4';
/** First wave: big enough that admitting it is one long transaction. */
const WAVE = 4000;
/** Second wave: must stay pending, so "nothing admitted beyond the wave" means something. */
const REST = 500;

interface SchedulerProcess {
  child: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running: boolean;
}

interface Snapshot {
  revision: number;
  currentWave: number;
  state: string;
  admitted: Array<{
    nodeId: string;
    wave: number;
    state: string;
    admittedAt: string | null;
    fromVersion: string | null;
  }>;
  assignments: Array<{
    nodeId: string;
    rolloutId: string | null;
    releaseId: string | null;
    version: string | null;
    generation: number;
  }>;
}

const schedulers: SchedulerProcess[] = [];
const closers: Array<() => Promise<void> | void> = [];
const dbs = await testDatabases();

afterAll(async () => {
  for (const s of schedulers) {
    if (s.running) process.kill(s.child.pid!, 'SIGKILL');
    await s.exited;
  }
  for (const close of closers.reverse()) await close();
  await Promise.all(dbs.map((d) => d.drop()));
});

function startScheduler(env: NodeJS.ProcessEnv): SchedulerProcess {
  const child = spawn(process.execPath, [schedulerMain], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (d: Buffer): void => {
    output.push(d.toString());
    if (output.length > 200) output.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const s: SchedulerProcess = {
    child,
    output,
    running: true,
    exited: new Promise((resolve) =>
      child.once('close', (code, signal) => {
        s.running = false;
        resolve({ code, signal });
      }),
    ),
  };
  schedulers.push(s);
  return s;
}

async function kill(scheduler: SchedulerProcess): Promise<void> {
  process.kill(scheduler.child.pid!, 'SIGKILL');
  expect((await scheduler.exited).signal).toBe('SIGKILL');
}

/** Polls until `check` returns a value; fails early, with its output, if the watched scheduler exits. */
async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  { watch, everyMs = 10 }: { watch?: SchedulerProcess; everyMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    const exited = watch !== undefined && !watch.running;
    if (exited || Date.now() > deadline) {
      throw new Error(
        `${exited ? 'the scheduler exited' : 'timed out'} waiting for ${what}` +
          (watch ? `; scheduler output:\n${watch.output.join('').slice(-4000)}` : ''),
      );
    }
    await sleep(everyMs);
  }
}

/** What the database holds for the rollout: its row, its admitted nodes, and every director assignment. */
async function snapshot(db: Db, rolloutId: string): Promise<Snapshot> {
  const rollout = await db
    .selectFrom('rollouts')
    .select(['revision', 'current_wave', 'state'])
    .where('id', '=', rolloutId)
    .executeTakeFirstOrThrow();
  const admitted = await db
    .selectFrom('rollout_nodes')
    .select(['node_id', 'wave', 'state', 'admitted_at', 'from_version'])
    .where('rollout_id', '=', rolloutId)
    .where('state', '!=', 'pending')
    .orderBy('node_id')
    .execute();
  // Every row, not only this rollout's: an assignment naming no rollout or another one would be a stray too.
  const assignments = await db
    .selectFrom('director_assignments')
    .select(['node_id', 'rollout_id', 'release_id', 'version', 'generation'])
    .orderBy('node_id')
    .execute();
  return {
    revision: Number(rollout.revision),
    currentWave: Number(rollout.current_wave),
    state: rollout.state,
    admitted: admitted.map((r) => ({
      nodeId: r.node_id,
      wave: Number(r.wave),
      state: r.state,
      admittedAt: r.admitted_at,
      fromVersion: r.from_version,
    })),
    assignments: assignments.map((r) => ({
      nodeId: r.node_id,
      rolloutId: r.rollout_id,
      releaseId: r.release_id,
      version: r.version,
      generation: Number(r.generation),
    })),
  };
}

const sorted = (ids: Iterable<string>): string[] => [...ids].sort();

/**
 * The first wave admitted exactly once, by one tick: every node of it and no other assigned, with one
 * admission time, and one director assignment each, naming the new release and the rollout, never re-made.
 */
function expectWaveAdmittedOnce(
  s: Snapshot,
  expected: { firstWave: string[]; rolloutId: string; releaseId: string },
): void {
  expect({ state: s.state, currentWave: s.currentWave }).toEqual({ state: 'running', currentWave: 0 });
  expect(sorted(s.admitted.map((n) => n.nodeId))).toEqual(expected.firstWave);
  expect(new Set(s.admitted.map((n) => `wave ${n.wave}, ${n.state}, from ${n.fromVersion}`))).toEqual(
    new Set(['wave 0, assigned, from 1.0.0']),
  );
  expect(new Set(s.admitted.map((n) => n.admittedAt)).size).toBe(1);
  expect(sorted(s.assignments.map((a) => a.nodeId))).toEqual(expected.firstWave);
  expect(
    new Set(s.assignments.map((a) => JSON.stringify([a.rolloutId, a.releaseId, a.version, a.generation]))),
  ).toEqual(new Set([JSON.stringify([expected.rolloutId, expected.releaseId, '2.0.0', 1])]));
}

describe.each(dbs)('a scheduler SIGKILLed mid-tick on $name', (database) => {
  it('a kill inside the admitting tick leaves none of it; a fresh scheduler admits the wave exactly once', async () => {
    const config = database.config;
    const databaseUrl = config.dialect === 'postgres' ? config.url : `sqlite:${config.file}`;
    const queuePrefix = `t${randomBytes(5).toString('hex')}`;
    const api: ApiHarness = await startApi({
      DATABASE_URL: databaseUrl,
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: queuePrefix,
    });
    closers.push(() => rmSync(api.config.dataDir, { recursive: true, force: true }));
    if (config.dialect === 'sqlite')
      closers.push(() => rmSync(dirname(config.file), { recursive: true, force: true }));
    closers.push(() => api.close());

    const fixtures = new RolloutFixtures(api);
    await fixtures.release(HW, '1.0.0');
    const release = await fixtures.release(HW, '2.0.0');
    const nodeIds: string[] = [];
    await api.db.transaction().execute(async (trx) => {
      for (let i = 0; i < WAVE + REST; i++)
        nodeIds.push(await seedNodeRow(trx, { hardwareId: HW, runningVersion: '1.0.0' }));
    });
    const attestedAt = new Date().toISOString();
    for (let i = 0; i < nodeIds.length; i += 1000) {
      await api.db
        .insertInto('attestation_verdicts')
        .values(
          nodeIds.slice(i, i + 1000).map((nodeId) => ({
            id: randomUUID(),
            node_id: nodeId,
            passed: 1,
            reason: 'quote verified, PCRs match',
            pcr_values: '{}',
            release_version: null,
            created_at: attestedAt,
          })),
        )
        .execute();
    }

    const rollout = await api.admin<RolloutDto>('POST', '/api/v1/rollouts', {
      name: `kill-${randomUUID()}`,
      hardwareId: HW,
      version: '2.0.0',
      selector: {},
      waves: [
        { count: WAVE, soakSeconds: 0 },
        { percent: 100, soakSeconds: 0 },
      ],
      successThreshold: 1,
      failureThreshold: 0.5,
      maxAttestationAgeSeconds: 3600,
    });
    // No scheduler runs yet: the immediate tick the api queues on start waits in Redis for the first one.
    await api.admin('POST', `/api/v1/rollouts/${rollout.id}/start`);
    const expected = { rolloutId: rollout.id, releaseId: release.id, firstWave: [] as string[] };
    expected.firstWave = sorted(
      (
        await api.db
          .selectFrom('rollout_nodes')
          .select('node_id')
          .where('rollout_id', '=', rollout.id)
          .where('wave', '=', 0)
          .execute()
      ).map((r) => r.node_id),
    );
    expect(expected.firstWave).toHaveLength(WAVE);
    const before = await snapshot(api.db, rollout.id);
    expect(before.admitted).toEqual([]);
    expect(before.assignments).toEqual([]);

    const applicationName = `otter-kill-${randomBytes(4).toString('hex')}`;
    const schedulerEnv = (name: string): NodeJS.ProcessEnv => {
      let url = databaseUrl;
      if (config.dialect === 'postgres') {
        const u = new URL(config.url);
        u.searchParams.set('application_name', name);
        url = u.toString();
      }
      return {
        PATH: process.env.PATH,
        DATABASE_URL: url,
        REDIS_URL: process.env.OTTER_TEST_REDIS_URL,
        OTTER_QUEUE_PREFIX: queuePrefix,
        OTTER_DATA_DIR: api.config.dataDir,
        OTTER_ROLLOUT_TICK_SECONDS: '1',
        OTTER_ENV: 'test',
        OTTER_LOG_LEVEL: 'info',
      };
    };

    // Each round starts a scheduler and kills it; true when it was killed while its tick's transaction was
    // seen open (whether that transaction had committed by then is read from the state afterwards).
    const rounds: Array<() => Promise<boolean>> = [];
    if (config.dialect === 'postgres') {
      type Backend = { pid: number; in_transaction: boolean; wait_event_type: string | null; query: string };
      const backends = async (): Promise<Backend[]> =>
        (
          await sql<Backend>`
            select pid, xact_start is not null as in_transaction, wait_event_type, query
            from pg_stat_activity where application_name = ${applicationName}`.execute(api.db)
        ).rows;
      const gone = (): Promise<true> =>
        until('the killed scheduler to leave PostgreSQL', async () =>
          (await backends()).length === 0 ? true : undefined,
        );
      const locker = new pg.Client({ connectionString: config.url });
      await locker.connect();
      closers.push(() => locker.end());

      rounds.push(async () => {
        await locker.query('BEGIN');
        await locker.query('SELECT 1 FROM rollout_nodes WHERE rollout_id = $1 AND node_id = $2 FOR UPDATE', [
          rollout.id,
          expected.firstWave[WAVE - 1],
        ]);
        const scheduler = startScheduler(schedulerEnv(applicationName));
        const stuck = await until(
          'the tick to wait on the locked rollout_nodes row',
          async () =>
            (await backends()).find(
              (b) =>
                b.in_transaction && b.wait_event_type === 'Lock' && /^update "rollout_nodes"/i.test(b.query),
            ),
          { watch: scheduler },
        );
        await kill(scheduler);
        // The backend outlives its client while it waits on our lock. Once the lock goes its UPDATE finishes,
        // it finds the client gone and rolls back: only the dead client could have sent the COMMIT.
        expect((await backends()).map((b) => b.pid)).toContain(stuck.pid);
        await locker.query('ROLLBACK');
        await gone();
        return true;
      });
      rounds.push(async () => {
        const scheduler = startScheduler(schedulerEnv(applicationName));
        const writing = await until(
          'the tick writing its admissions, or its commit',
          async () => {
            const inWrite = (await backends()).some(
              (b) =>
                b.in_transaction &&
                /^insert into "director_assignments"|^update "rollout_nodes"/i.test(b.query),
            );
            if (inWrite) return true;
            // Missed the window: later ticks write no admissions, so stop once this one has committed.
            return (await snapshot(api.db, rollout.id)).revision !== before.revision ? false : undefined;
          },
          { watch: scheduler, everyMs: 2 },
        );
        await kill(scheduler);
        await gone();
        return writing;
      });
    } else {
      const probe = new SqliteDatabase(config.file, { timeout: 0 });
      closers.push(() => void probe.close());
      /** True while another connection holds the write lock; takes it for microseconds when free. */
      const writeLockHeld = (): boolean => {
        try {
          probe.exec('BEGIN IMMEDIATE');
        } catch (e) {
          if ((e as { code?: string }).code === 'SQLITE_BUSY') return true;
          throw e;
        }
        probe.exec('ROLLBACK');
        return false;
      };
      expect(writeLockHeld()).toBe(false);
      for (const offsetMs of [0, 50]) {
        rounds.push(async () => {
          const scheduler = startScheduler(schedulerEnv(applicationName));
          await until('the tick to hold the write lock', () => (writeLockHeld() ? true : undefined), {
            watch: scheduler,
            everyMs: 1,
          });
          const seen = performance.now();
          let held = true;
          while (held && performance.now() - seen < offsetMs) {
            await sleep(1);
            held = writeLockHeld();
          }
          await kill(scheduler);
          expect(writeLockHeld()).toBe(false);
          return held;
        });
      }
    }

    const landedInside: boolean[] = [];
    for (const round of rounds) {
      const seenOpen = await round();
      const after = await snapshot(api.db, rollout.id);
      if (after.revision === before.revision) {
        // Nothing committed: not the claim, not one admission, not one assignment.
        expect(after).toEqual(before);
        landedInside.push(seenOpen);
      } else {
        // The tick committed before the kill: then all of it is there, and there is nothing left to kill.
        expectWaveAdmittedOnce(after, expected);
        landedInside.push(false);
        break;
      }
    }
    expect(landedInside[0]).toBe(true);

    // A fresh scheduler process finishes the job: the wave admitted once, and kept so over two more ticks.
    const last = startScheduler(schedulerEnv(`${applicationName}-last`));
    const admittingRevision = await until(
      'the first wave admitted',
      async () => {
        const s = await snapshot(api.db, rollout.id);
        return s.admitted.length > 0 ? s.revision : undefined;
      },
      { watch: last },
    );
    await until(
      'two more ticks',
      async () => ((await snapshot(api.db, rollout.id)).revision >= admittingRevision + 2 ? true : undefined),
      { watch: last, everyMs: 50 },
    );
    await kill(last);
    expectWaveAdmittedOnce(await snapshot(api.db, rollout.id), expected);
  }, 60_000);
});
