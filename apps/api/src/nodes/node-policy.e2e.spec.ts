import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '#otter/db';
import { DeviceTokenService } from '#otter/identity';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { TpmNodes } from '../testing/tpm-nodes.js';

// Who may let a node in or keep it out, and node state changes under races: the real api on both databases,
// with nodes whose AK and device key live in a real swtpm, so every identity request is genuine.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

/** Each order (revoke sent first, identity sent first) this many times. */
const RACES_PER_ORDER = 50;

let tpm: TpmNodes;
beforeAll(async () => {
  tpm = await TpmNodes.start();
}, 120_000);
afterAll(async () => tpm?.stop());

describe.each(dbs)('node policy on $name', ({ config: database }) => {
  let api: ApiHarness;
  let admin: string;
  let engineer: string;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    });
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    engineer = (
      await api.admin<{ token: string }>('POST', '/api/v1/tokens', {
        name: `ci-${randomUUID()}`,
        role: 'release-engineer',
      })
    ).token;
  });
  afterAll(async () => api?.close());

  const row = (id: string) =>
    api.db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  function post(path: string, token: string | undefined, body?: unknown): Promise<Response> {
    return fetch(`${api.url}${path}`, {
      method: 'POST',
      headers: {
        ...(token && { authorization: `Bearer ${token}` }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  it('a release-engineer token cannot approve, reject, revoke or re-pin a node: 403 naming admin, node unchanged', async () => {
    const pending = await tpm.seed(api.db, { state: 'pending-approval' });
    const active = await tpm.seed(api.db, { state: 'active', runningVersion: '1.0.0' });
    // A quote to re-pin from, so a refused re-pin is the role's doing and not a missing quote.
    await api.db
      .insertInto('attestation_verdicts')
      .values({
        id: randomUUID(),
        node_id: active,
        passed: 0,
        reason: 'PCR 0 differs from the pinned boot value',
        pcr_values: JSON.stringify({ 0: 'cc'.repeat(32) }),
        release_version: '1.0.0',
        created_at: new Date().toISOString(),
      })
      .execute();
    const before = [await row(pending), await row(active)];
    const revoked = api.app.get(DeviceTokenService);

    for (const [action, id] of [
      ['approve', pending],
      ['reject', pending],
      ['revoke', active],
      ['repin', active],
    ] as const) {
      const res = await post(`/api/v1/nodes/${id}/${action}`, engineer);
      expect(res.status, action).toBe(403);
      expect(await res.json(), action).toMatchObject({
        code: 'FORBIDDEN',
        message: 'this action requires the admin role',
        details: { requiredRole: 'admin' },
      });
    }
    expect([await row(pending), await row(active)]).toEqual(before);
    expect(await revoked.isRevoked(active)).toBe(false);

    // The same with the admin token: it is the role that was missing.
    await api.admin('POST', `/api/v1/nodes/${pending}/approve`);
    expect((await row(pending)).state).toBe('approved');
  });

  it(`a revoke racing an identity issue (${RACES_PER_ORDER}x each order) never leaves the node active`, async () => {
    const tokens = api.app.get(DeviceTokenService);
    const outcomes = { identityFirst: 0, revokeFirst: 0 };
    for (let i = 0; i < 2 * RACES_PER_ORDER; i++) {
      const nodeId = await tpm.seed(api.db, { state: 'approved' });
      const request = await tpm.identityRequest(nodeId);
      const identity = (): Promise<Response> =>
        post(`/api/v1/devices/${nodeId}/identity`, undefined, request);
      const revoke = (): Promise<Response> => post(`/api/v1/nodes/${nodeId}/revoke`, admin);
      // Alternate which request leaves first, and spread the second over the first's processing time (an
      // identity issue takes some tens of milliseconds: verify the certify and the assertion, sign a certificate).
      const gap = ((i >> 1) % 10) * 6;
      const [revoked, issued] = await Promise.all(
        i % 2 === 0 ? [revoke(), sleep(gap).then(identity)] : [sleep(gap).then(revoke), identity()],
      );

      expect(revoked.status, `race ${i}: revoke`).toBe(200);
      const after = await row(nodeId);
      expect(after.state, `race ${i}`).toBe('revoked');
      expect(await tokens.isRevoked(nodeId), `race ${i}: Redis revoked set`).toBe(true);
      if (issued.status === 201) {
        outcomes.identityFirst += 1;
        // It got its certificate before the revoke landed; the revoke still ends it.
        expect(after.device_public).toBe(request.devicePublic);
      } else {
        outcomes.revokeFirst += 1;
        expect(issued.status, `race ${i}: identity`).toBe(403);
        expect(await issued.json()).toMatchObject({ code: 'NODE_NOT_ADMITTED' });
        expect(after.device_public, `race ${i}: no certificate recorded`).toBeNull();
      }
    }
    // Both interleavings happened: the race was really run, not one order every time.
    expect(outcomes.identityFirst).toBeGreaterThan(0);
    expect(outcomes.revokeFirst).toBeGreaterThan(0);

    // A node whose identity won its race cannot use it: the token exchange is refused.
    const winner = await tpm.seed(api.db, { state: 'approved' });
    expect(
      (await post(`/api/v1/devices/${winner}/identity`, undefined, await tpm.identityRequest(winner))).status,
    ).toBe(201);
    expect((await post(`/api/v1/nodes/${winner}/revoke`, admin)).status).toBe(200);
    const exchange = await post('/api/v1/devices/token', undefined, {
      assertion: await tpm.assertion(winner),
    });
    expect(exchange.status).toBe(401);
  }, 300_000);
});
