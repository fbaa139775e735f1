import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { loadConfig } from '#otter/config';
import { afterCommit, createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import type { AuditRepository } from './audit.repository.js';
import { runWithAuditContext } from './audit-context.js';
import { auditRepositoryFor, auditServiceFor, insertAuditRow } from './testing.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const DAY = 86_400_000;

describe.each(dbs)('audit log on $name', ({ config }) => {
  let db: Db;
  let repository: AuditRepository;
  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    repository = auditRepositoryFor(db);
  });
  afterAll(async () => db?.destroy());

  it('refuses UPDATE of any row and DELETE of rows newer than a recorded purge cutoff, in the database itself', async () => {
    await insertAuditRow(db, new Date(), { targetId: 'n-update' });
    const count = async (): Promise<number> =>
      Number(
        (
          await db
            .selectFrom('audit_log')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await count();
    await expect(sql`UPDATE audit_log SET outcome = 'failed'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(db.updateTable('audit_log').set({ actor_name: 'someone else' }).execute()).rejects.toThrow(
      /append-only/,
    );
    await expect(sql`DELETE FROM audit_log`.execute(db)).rejects.toThrow(/append-only/);
    if (config.dialect === 'postgres') {
      await expect(sql`TRUNCATE audit_log`.execute(db)).rejects.toThrow(/append-only/);
    }
    expect(await count()).toBe(before);
    const [row] = await repository.list({ target: { kind: 'node', id: 'n-update' } }, 10);
    expect(row).toMatchObject({ outcome: 'ok', actor: { name: 'test' } });
  });

  it('purges only through a recorded cutoff, and records the purge as a row of its own', async () => {
    const now = new Date();
    await insertAuditRow(db, new Date(now.getTime() - 40 * DAY), { targetId: 'n-old' });
    await insertAuditRow(db, new Date(now.getTime() - 10 * DAY), { targetId: 'n-recent' });
    const off = auditServiceFor(db, loadConfig({}));
    expect(await off.purge(now)).toBe(0);
    const on = auditServiceFor(db, loadConfig({ OTTER_AUDIT_RETENTION_DAYS: '30' }));
    expect(await on.purge(now)).toBeGreaterThanOrEqual(1);
    expect(await repository.list({ target: { kind: 'node', id: 'n-old' } }, 10)).toEqual([]);
    expect(await repository.list({ target: { kind: 'node', id: 'n-recent' } }, 10)).toHaveLength(1);
    const [purged] = await repository.list({ action: 'audit.purged' }, 10);
    expect(purged).toMatchObject({ actor: null, outcome: 'ok', changes: { retentionDays: 30 } });
    // The cutoff lets nothing newer go, even by hand; and the recorded cutoffs cannot be rewritten to widen it.
    await expect(sql`DELETE FROM audit_log`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`UPDATE audit_purges SET before = '9999'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`DELETE FROM audit_purges`.execute(db)).rejects.toThrow(/append-only/);
  });

  it('pages newest first by id and filters by actor, action, target and time', async () => {
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    for (let i = 0; i < 5; i++) {
      await insertAuditRow(db, new Date(t0 + i * 1000), {
        targetId: `page-${i}`,
        actorName: i % 2 ? 'odd' : 'even',
        action: i === 4 ? 'node.revoked' : 'node.approved',
      });
    }
    const service = auditServiceFor(db, loadConfig({}));
    const from = new Date(t0).toISOString();
    const first = await service.list({ from, limit: 2 });
    expect(first.entries.map((e) => e.target.id)).toEqual(['page-4', 'page-3']);
    const second = await service.list({ from, limit: 2, cursor: first.nextCursor! });
    expect(second.entries.map((e) => e.target.id)).toEqual(['page-2', 'page-1']);
    const last = await service.list({ from, limit: 2, cursor: second.nextCursor! });
    expect(last).toMatchObject({ entries: [{ target: { id: 'page-0' } }], nextCursor: null });
    expect((await service.list({ from, actor: 'odd' })).entries.map((e) => e.target.id)).toEqual([
      'page-3',
      'page-1',
    ]);
    expect((await service.list({ from, action: 'node.revoked' })).entries).toHaveLength(1);
    expect((await service.list({ from, target: 'node:page-2' })).entries).toHaveLength(1);
    const to = new Date(t0 + 2000).toISOString();
    expect((await service.list({ from, to })).entries.map((e) => e.target.id)).toEqual(['page-1', 'page-0']);
  });

  it('commits a change and its row together, or neither', async () => {
    const service = auditServiceFor(db, loadConfig({}));
    const context = {
      actor: { tokenId: 't1', name: 'alice', role: 'admin' as const },
      requestId: 'r1',
      source: '10.0.0.1',
      recorded: false,
    };
    const change = { action: 'token.created' as const, target: { kind: 'token' as const, id: 'tx-token' } };
    const tokenRow = (id: string) => ({
      id,
      name: id,
      role: 'viewer',
      token_hash: `hash-${id}`,
      created_at: 'now',
      revoked_at: null,
    });

    await expect(
      runWithAuditContext(context, () =>
        service.commitWith(
          async () => {
            await db.insertInto('api_tokens').values(tokenRow('tx-rolled-back')).execute();
            throw new Error('the change broke after its first write');
          },
          () => change,
        ),
      ),
    ).rejects.toThrow('broke');
    expect(
      await db.selectFrom('api_tokens').select('id').where('id', '=', 'tx-rolled-back').execute(),
    ).toEqual([]);
    expect(await repository.list({ target: { kind: 'token', id: 'tx-token' } }, 10)).toEqual([]);

    await runWithAuditContext(context, () =>
      service.commitWith(
        () => db.insertInto('api_tokens').values(tokenRow('tx-kept')).execute(),
        () => change,
      ),
    );
    expect(await db.selectFrom('api_tokens').select('id').where('id', '=', 'tx-kept').execute()).toHaveLength(
      1,
    );
    expect(await repository.list({ target: { kind: 'token', id: 'tx-token' } }, 10)).toMatchObject([
      {
        outcome: 'ok',
        actor: { tokenId: 't1', name: 'alice', role: 'admin' },
        requestId: 'r1',
        source: '10.0.0.1',
      },
    ]);
    expect(context.recorded).toBe(true);
  });

  it('turns a nested transaction into a savepoint: its failure and retry leave the enclosing one usable', async () => {
    const row = (id: string) => ({
      id,
      name: id,
      role: 'viewer',
      token_hash: `hash-${id}`,
      created_at: 'now',
      revoked_at: null,
    });
    await db.insertInto('api_tokens').values(row('sp-taken')).execute();
    await repository.transaction(async () => {
      await expect(
        db.transaction().execute((tx) => tx.insertInto('api_tokens').values(row('sp-taken')).execute()),
      ).rejects.toThrow();
      // On PostgreSQL this would fail with "current transaction is aborted" without the savepoint.
      await db.transaction().execute((tx) => tx.insertInto('api_tokens').values(row('sp-retried')).execute());
    });
    expect(
      await db.selectFrom('api_tokens').select('id').where('id', '=', 'sp-retried').execute(),
    ).toHaveLength(1);
  });

  it('runs an after-commit effect only once the change is committed, and never after a rollback', async () => {
    const seen: string[] = [];
    const effect = (label: string) => async () => {
      // What the effect can read is committed: another connection (PostgreSQL) would see it too.
      seen.push(
        `${label}:${(await db.selectFrom('api_tokens').select('id').where('id', '=', label).execute()).length}`,
      );
      return true;
    };
    const row = (id: string) => ({
      id,
      name: id,
      role: 'viewer',
      token_hash: `hash-${id}`,
      created_at: 'now',
      revoked_at: null,
    });
    let committed: Promise<boolean> | undefined;
    await repository.transaction(async () => {
      await db.insertInto('api_tokens').values(row('ac-kept')).execute();
      committed = afterCommit(effect('ac-kept'), false);
      expect(seen).toEqual([]);
    });
    expect(await committed).toBe(true);
    let rolledBack: Promise<boolean> | undefined;
    await expect(
      repository.transaction(async () => {
        await db.insertInto('api_tokens').values(row('ac-gone')).execute();
        rolledBack = afterCommit(effect('ac-gone'), false);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await rolledBack).toBe(false);
    expect(seen).toEqual(['ac-kept:1']);
  });
});
