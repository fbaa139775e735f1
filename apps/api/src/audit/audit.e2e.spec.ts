import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Reflector } from '@nestjs/core';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditedRoute } from '#otter/audit';
import type { AuditEntryDto, AuditListDto, TokenListDto } from '#otter/contracts';
import { seedNodeRow, testDatabases } from '#otter/db';
import { RolloutFixtures, twoWaveRollout } from '../rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { apiRoutes, stateChangingManagementRoutes } from '../testing/management-routes.js';

// The audit log against a real api on both databases: every state-changing management route leaves its row
// with the right actor, action and target (one table, checked against the routes Nest registered), refused
// attempts leave theirs, a change whose row cannot be written does not happen, and GET /api/v1/audit filters,
// pages and refuses bad filters.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

interface Case {
  /** The route template, as Nest registered it. */
  route: string;
  method: string;
  path: () => string;
  as: () => string;
  body?: () => unknown;
  form?: () => FormData;
  status: number;
  action: AuditEntryDto['action'];
  target: (result: Record<string, unknown>) => AuditEntryDto['target'];
  outcome?: AuditEntryDto['outcome'];
  changes?: Record<string, unknown>;
}

describe.each(dbs)('audit log on $name', ({ config: database }) => {
  let api: ApiHarness;
  let admin: string;
  let adminId: string;
  let engineer = '';
  let engineerId = '';
  const hw = `audit-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    });
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    adminId = (await api.admin<TokenListDto>('GET', '/api/v1/tokens')).tokens[0]!.id;
  });
  afterAll(async () => api?.close());

  function call(method: string, path: string, auth?: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (auth) headers.authorization = `Bearer ${auth}`;
    if (body !== undefined && !(body instanceof FormData)) headers['content-type'] = 'application/json';
    return fetch(`${api.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
    });
  }

  async function entries(query: string): Promise<AuditEntryDto[]> {
    return (await api.admin<AuditListDto>('GET', `/api/v1/audit?${query}`)).entries;
  }

  // First in the file: the first refusal from this address in the coalescing window is written at once.
  it('records a refused attempt with its outcome, the route’s action and target, and coalesces a flood', async () => {
    const node = randomUUID();
    expect((await call('POST', `/api/v1/nodes/${node}/approve`)).status).toBe(401);
    expect(await entries(`target=node:${node}`)).toMatchObject([
      { outcome: 'refused-401', action: 'node.approved', actor: null, source: '127.0.0.1', changes: {} },
    ]);
    const viewer = (await (
      await call('POST', '/api/v1/tokens', admin, { name: 'audit-viewer', role: 'viewer' })
    ).json()) as { token: string; id: string };
    expect((await call('POST', `/api/v1/nodes/${node}/revoke`, viewer.token)).status).toBe(403);
    expect(await entries(`target=node:${node}&outcome=refused-403`)).toMatchObject([
      { action: 'node.revoked', actor: { tokenId: viewer.id, name: 'audit-viewer', role: 'viewer' } },
    ]);
    // A read-only route refused: `api.read`, its target the route.
    expect((await call('GET', '/api/v1/audit', viewer.token)).status).toBe(403);
    expect((await entries(`action=api.read&actor=${viewer.id}`))[0]).toMatchObject({
      outcome: 'refused-403',
      target: { kind: 'route', id: 'GET /api/v1/audit' },
    });

    const refused401 = async (): Promise<number> => (await entries('outcome=refused-401&limit=500')).length;
    const before = await refused401();
    const flood = await Promise.all(
      Array.from({ length: 300 }, () => call('POST', '/api/v1/tokens', `otter_${'x'.repeat(40)}`, {})),
    );
    expect(new Set(flood.map((r) => r.status))).toEqual(new Set([401]));
    // 300 refusals of one action from one address: one row, two if a window boundary fell inside.
    const added = (await refused401()) - before;
    expect(added).toBeGreaterThanOrEqual(1);
    expect(added).toBeLessThanOrEqual(2);
  });

  it('leaves one row per management change with its actor, action, target and outcome, for every route', async () => {
    const fixtures = new RolloutFixtures(api);
    const pending = [
      await seedNodeRow(api.db, { state: 'pending-approval' }),
      await seedNodeRow(api.db, { state: 'pending-approval' }),
    ];
    const active = await seedNodeRow(api.db, { state: 'active' });
    const spare = await seedNodeRow(api.db, { state: 'active' });
    const fleet = [await fixtures.node(hw, '1.0.0'), await fixtures.node(hw, '1.0.0')];
    await fixtures.release(hw, '2.0.0');
    const root = (name: string) => async () => {
      const current = await api.admin<{ signed: { version: number } }>('GET', `/api/v1/tuf/${name}/root`);
      return { signatures: [], signed: { ...current.signed, version: current.signed.version + 1 } };
    };
    let rootBody: unknown;
    const state: Record<string, string> = {};
    const asAdmin = () => admin;
    const asEngineer = () => engineer;
    const cases: Case[] = [
      {
        route: 'POST /api/v1/tokens',
        method: 'POST',
        path: () => '/api/v1/tokens',
        as: asAdmin,
        body: () => ({ name: 'audit-engineer', role: 'release-engineer' }),
        status: 201,
        action: 'token.created',
        target: (r) => ({ kind: 'token', id: r.id as string }),
        changes: { name: 'audit-engineer', role: 'release-engineer' },
      },
      {
        route: 'DELETE /api/v1/tokens/:id',
        method: 'DELETE',
        path: () => `/api/v1/tokens/${state.spareToken}`,
        as: asAdmin,
        status: 204,
        action: 'token.revoked',
        target: () => ({ kind: 'token', id: state.spareToken! }),
      },
      {
        route: 'POST /api/v1/events/tickets',
        method: 'POST',
        path: () => '/api/v1/events/tickets',
        as: asEngineer,
        status: 201,
        action: 'events.ticket.issued',
        target: () => ({ kind: 'token', id: null }),
      },
      {
        route: 'POST /api/v1/nodes/:id/approve',
        method: 'POST',
        path: () => `/api/v1/nodes/${pending[0]}/approve`,
        as: asAdmin,
        status: 200,
        action: 'node.approved',
        target: () => ({ kind: 'node', id: pending[0]! }),
        changes: { state: 'approved' },
      },
      {
        route: 'POST /api/v1/nodes/:id/reject',
        method: 'POST',
        path: () => `/api/v1/nodes/${pending[1]}/reject`,
        as: asAdmin,
        status: 200,
        action: 'node.rejected',
        target: () => ({ kind: 'node', id: pending[1]! }),
        changes: { state: 'rejected' },
      },
      {
        route: 'POST /api/v1/nodes/:id/re-enroll',
        method: 'POST',
        path: () => `/api/v1/nodes/${active}/re-enroll`,
        as: asAdmin,
        status: 200,
        action: 'node.reenroll.opened',
        target: () => ({ kind: 'node', id: active }),
      },
      {
        // The node never attested: nothing to pin from. A refused change is `failed`, never `ok`.
        route: 'POST /api/v1/nodes/:id/repin',
        method: 'POST',
        path: () => `/api/v1/nodes/${active}/repin`,
        as: asAdmin,
        status: 409,
        action: 'node.repinned',
        target: () => ({ kind: 'node', id: active }),
        outcome: 'failed',
        changes: { error: 'NODE_STATE_INVALID' },
      },
      {
        route: 'PUT /api/v1/nodes/:id/labels',
        method: 'PUT',
        path: () => `/api/v1/nodes/${active}/labels`,
        as: asEngineer,
        body: () => ({ labels: { site: 'north' } }),
        status: 200,
        action: 'node.labels.set',
        target: () => ({ kind: 'node', id: active }),
        changes: { labels: { site: 'north' } },
      },
      {
        route: 'POST /api/v1/nodes/:id/revoke',
        method: 'POST',
        path: () => `/api/v1/nodes/${spare}/revoke`,
        as: asAdmin,
        status: 200,
        action: 'node.revoked',
        target: () => ({ kind: 'node', id: spare }),
        changes: { state: 'revoked' },
      },
      {
        route: 'POST /api/v1/enrollment-allowlist',
        method: 'POST',
        path: () => '/api/v1/enrollment-allowlist',
        as: asAdmin,
        body: () => ({ kind: 'ek-public-sha256', value: 'ab'.repeat(32), note: 'spare board' }),
        status: 204,
        action: 'enrollment.allowlist.added',
        target: () => ({ kind: 'allowlist', id: null }),
        changes: { kind: 'ek-public-sha256', value: 'ab'.repeat(32), note: 'spare board' },
      },
      {
        route: 'POST /api/v1/releases',
        method: 'POST',
        path: () => '/api/v1/releases',
        as: asEngineer,
        form: () => {
          const f = new FormData();
          f.append('hardware', hw);
          f.append('version', '1.0.0');
          f.append('image', new Blob([randomBytes(2000)]), 'image.bin');
          return f;
        },
        status: 201,
        action: 'release.pushed',
        target: (r) => ({ kind: 'release', id: r.id as string }),
        changes: { hardwareId: hw, version: '1.0.0' },
      },
      {
        route: 'POST /api/v1/deltas',
        method: 'POST',
        path: () => '/api/v1/deltas',
        as: asEngineer,
        body: () => ({ hardware: hw, from: '1.0.0', to: '2.0.0' }),
        status: 202,
        action: 'delta.requested',
        target: (r) => ({ kind: 'delta', id: r.id as string }),
      },
      {
        route: 'POST /api/v1/rollouts',
        method: 'POST',
        path: () => '/api/v1/rollouts',
        as: asEngineer,
        body: () => twoWaveRollout(hw, '2.0.0', 'audited'),
        status: 201,
        action: 'rollout.created',
        target: (r) => ({ kind: 'rollout', id: r.id as string }),
        changes: { name: 'audited', state: 'draft' },
      },
      {
        route: 'POST /api/v1/rollouts/:id/start',
        method: 'POST',
        path: () => `/api/v1/rollouts/${state.rollout}/start`,
        as: asEngineer,
        status: 200,
        action: 'rollout.started',
        target: () => ({ kind: 'rollout', id: state.rollout! }),
      },
      {
        route: 'POST /api/v1/rollouts/:id/nodes/:nodeId/exclude',
        method: 'POST',
        path: () => `/api/v1/rollouts/${state.rollout}/nodes/${fleet[1]}/exclude`,
        as: asEngineer,
        body: () => ({ reason: 'bench board' }),
        status: 200,
        action: 'rollout.node.excluded',
        target: () => ({ kind: 'node', id: fleet[1]! }),
      },
      {
        route: 'POST /api/v1/rollouts/:id/pause',
        method: 'POST',
        path: () => `/api/v1/rollouts/${state.rollout}/pause`,
        as: asEngineer,
        body: () => ({ reason: 'lunch' }),
        status: 200,
        action: 'rollout.paused',
        target: () => ({ kind: 'rollout', id: state.rollout! }),
        changes: { state: 'paused', stateReason: 'paused by audit-engineer: lunch' },
      },
      {
        route: 'POST /api/v1/rollouts/:id/resume',
        method: 'POST',
        path: () => `/api/v1/rollouts/${state.rollout}/resume`,
        as: asEngineer,
        status: 200,
        action: 'rollout.resumed',
        target: () => ({ kind: 'rollout', id: state.rollout! }),
      },
      {
        route: 'POST /api/v1/rollouts/:id/abort',
        method: 'POST',
        path: () => `/api/v1/rollouts/${state.rollout}/abort`,
        as: asEngineer,
        body: () => ({ reason: 'enough' }),
        status: 200,
        action: 'rollout.aborted',
        target: () => ({ kind: 'rollout', id: state.rollout! }),
        changes: { state: 'aborted' },
      },
      {
        route: 'POST /api/v1/tuf/image/online-keys/:role/rotate',
        method: 'POST',
        path: () => '/api/v1/tuf/image/online-keys/timestamp/rotate',
        as: asAdmin,
        status: 201,
        action: 'tuf.key.rotated',
        target: () => ({ kind: 'tuf-key', id: 'timestamp' }),
      },
      {
        // Unsigned: refused by the ceremony's checks (422), so `failed` with the code; nothing published.
        route: 'POST /api/v1/tuf/image/root',
        method: 'POST',
        path: () => '/api/v1/tuf/image/root',
        as: asAdmin,
        body: () => rootBody,
        status: 422,
        action: 'tuf.root.published',
        target: () => ({ kind: 'tuf-root', id: null }),
        outcome: 'failed',
        changes: { error: 'TUF_ROOT_REJECTED' },
      },
      {
        route: 'POST /api/v1/tuf/director/root',
        method: 'POST',
        path: () => '/api/v1/tuf/director/root',
        as: asAdmin,
        body: () => rootBody,
        status: 422,
        action: 'director.root.published',
        target: () => ({ kind: 'director', id: null }),
        outcome: 'failed',
      },
      {
        route: 'POST /api/v1/tuf/director/online-keys/:role/rotate',
        method: 'POST',
        path: () => '/api/v1/tuf/director/online-keys/snapshot/rotate',
        as: asAdmin,
        status: 201,
        action: 'director.key.rotated',
        target: () => ({ kind: 'tuf-key', id: 'snapshot' }),
      },
      {
        route: 'POST /api/v1/tuf/director/metadata/invalidate',
        method: 'POST',
        path: () => '/api/v1/tuf/director/metadata/invalidate',
        as: asAdmin,
        status: 200,
        action: 'director.metadata.invalidated',
        target: () => ({ kind: 'director', id: null }),
      },
    ];

    // Every state-changing management route Nest registered is declared @Audited and is in the table above.
    const routes = stateChangingManagementRoutes(api.app);
    for (const route of routes) {
      expect(auditedRoute(new Reflector(), route.handler), `${route.method} ${route.path}`).toBeDefined();
    }
    expect(cases.map((c) => c.route).sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());

    const spareToken = (await (
      await call('POST', '/api/v1/tokens', admin, { name: 'audit-spare', role: 'viewer' })
    ).json()) as { id: string };
    state.spareToken = spareToken.id;
    for (const c of cases) {
      if (c.route.endsWith('/root'))
        rootBody = await root(c.route.includes('director') ? 'director' : 'image')();
      const response = await call(c.method, c.path(), c.as(), c.form ? c.form() : c.body?.());
      const text = await response.text();
      expect(response.status, `${c.route}: ${text}`).toBe(c.status);
      const result = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
      if (c.action === 'token.created') {
        engineer = result.token as string;
        engineerId = result.id as string;
      }
      if (c.action === 'rollout.created') state.rollout = result.id as string;
      const target = c.target(result);
      const [row, ...more] = await entries(
        `action=${c.action}&target=${target.kind}${target.id ? `:${target.id}` : ''}&from=${new Date(Date.now() - 60_000).toISOString()}`,
      );
      expect(more, c.route).toEqual([]);
      const actor =
        c.as() === admin
          ? { tokenId: adminId, name: 'bootstrap-admin', role: 'admin' }
          : { tokenId: engineerId, name: 'audit-engineer', role: 'release-engineer' };
      expect(row, c.route).toMatchObject({
        action: c.action,
        target,
        outcome: c.outcome ?? 'ok',
        actor,
        source: '127.0.0.1',
        changes: c.changes ?? {},
      });
      expect(row!.requestId, c.route).toEqual(expect.any(String));
    }
  });

  it('does not make a change whose audit row cannot be written, and records the attempt as failed', async () => {
    const node = await seedNodeRow(api.db, { state: 'active', labels: { site: 'before' } });
    // The database refuses this one `ok` row, as a full disk or a broken connection would at the worst moment.
    if (database.dialect === 'sqlite') {
      await sql`CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log
        WHEN NEW.action = 'node.labels.set' AND NEW.outcome = 'ok'
        BEGIN SELECT RAISE(ABORT, 'test: the audit row cannot be written'); END`.execute(api.db);
    } else {
      await sql`CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.action = 'node.labels.set' AND NEW.outcome = 'ok' THEN
            RAISE EXCEPTION 'test: the audit row cannot be written';
          END IF;
          RETURN NEW;
        END $$`.execute(api.db);
      await sql`CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log
        FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()`.execute(api.db);
    }
    try {
      const response = await call('PUT', `/api/v1/nodes/${node}/labels`, admin, {
        labels: { site: 'after' },
      });
      expect(response.status).toBe(500);
    } finally {
      await sql`DROP TRIGGER test_refuse_audit ${sql.raw(database.dialect === 'postgres' ? 'ON audit_log' : '')}`.execute(
        api.db,
      );
    }
    const row = await api.db
      .selectFrom('nodes')
      .select('labels')
      .where('id', '=', node)
      .executeTakeFirstOrThrow();
    expect(JSON.parse(row.labels)).toEqual({ site: 'before' });
    expect(await entries(`target=node:${node}`)).toMatchObject([
      { action: 'node.labels.set', outcome: 'failed', changes: { error: 'INTERNAL' } },
    ]);
  });

  it('answers bad filters with 400 and the reason, and pages with a cursor; no route changes rows', async () => {
    expect(
      apiRoutes(api.app)
        .filter((r) => r.path.startsWith('/api/v1/audit'))
        .map((r) => r.method),
    ).toEqual(['GET']);
    expect((await call('DELETE', '/api/v1/audit', admin)).status).toBe(404);
    for (const [query, reason] of [
      ['action=node.exploded', 'action'],
      ['from=yesterday', 'from'],
      ['to=2026-13-01T00:00:00Z', 'to'],
      ['cursor=-1', 'cursor'],
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['target=planet:earth', 'target'],
      ['actor=', 'actor'],
      ['colour=red', 'colour'],
      ['action=token.created&action=token.revoked', 'action'],
    ] as const) {
      const response = await call('GET', `/api/v1/audit?${query}`, admin);
      expect(response.status, query).toBe(400);
      const body = (await response.json()) as { code: string; message: string };
      expect(body.code, query).toBe('VALIDATION_FAILED');
      expect(body.message, query).toContain(reason);
    }
    const all = await entries('limit=500');
    expect(all.length).toBeGreaterThan(5);
    const seen: number[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page: AuditListDto = await api.admin<AuditListDto>(
        'GET',
        `/api/v1/audit?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...page.entries.map((e) => e.id));
      cursor = page.nextCursor;
    }
    expect(seen.slice(0, all.length)).toEqual(all.map((e) => e.id));
    expect([...seen].sort((a, b) => b - a)).toEqual(seen);
  });
});
