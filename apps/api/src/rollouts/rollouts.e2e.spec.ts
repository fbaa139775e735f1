import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type {
  CreateRolloutRequest,
  DeviceInstructionsDto,
  RolloutDto,
  RolloutNodeDto,
  UpdateStep,
} from '#otter/contracts';
import { testDatabases } from '#otter/db';
import { DirectorAssignmentRepository } from '#otter/director';
import { RolloutTicker } from '#otter/rollouts';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { deviceCredentialsFor } from '../testing/software-device-key.js';
import { RolloutFixtures } from './testing/rollout-fixtures.js';

// Rollouts against the real api, Redis and both databases, with the scheduler's ticker driven by hand at
// chosen times. Nodes, verdicts and releases are rows (no TPM here: test/rollout.e2e.spec.ts runs agents).

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const HW = 'rpi4';
const later = (seconds: number): Date => new Date(Date.now() + seconds * 1000);

describe.each(dbs)('rollouts on $name', ({ config: database }) => {
  let api: ApiHarness;
  let fixtures: RolloutFixtures;
  let ticker: RolloutTicker;
  let engineer: string;
  let viewer: string;
  let hw: string;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    });
    fixtures = new RolloutFixtures(api);
    ticker = api.app.get(RolloutTicker);
    const admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    const token = async (role: string): Promise<string> =>
      (
        (await (
          await call('POST', '/api/v1/tokens', admin, { name: `${role}-${randomUUID()}`, role })
        ).json()) as {
          token: string;
        }
      ).token;
    engineer = await token('release-engineer');
    viewer = await token('viewer');
  });
  afterAll(async () => api?.close());

  // Each test gets its own hardware id, so rollouts of different tests never share nodes.
  let counter = 0;
  async function fleet(size: number, labels: Record<string, string> = {}): Promise<string[]> {
    hw = `${HW}-${database.dialect}-${++counter}`;
    await fixtures.release(hw, '1.0.0');
    await fixtures.release(hw, '2.0.0');
    const ids: string[] = [];
    for (let i = 0; i < size; i++) ids.push(await fixtures.node(hw, '1.0.0', labels));
    return ids;
  }

  function call(method: string, path: string, auth?: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (auth) headers.authorization = `Bearer ${auth}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${api.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  function spec(overrides: Partial<CreateRolloutRequest> = {}): CreateRolloutRequest {
    return {
      name: 'r',
      hardwareId: hw,
      version: '2.0.0',
      selector: {},
      waves: [
        { count: 1, soakSeconds: 0 },
        { percent: 50, soakSeconds: 0 },
        { percent: 50, soakSeconds: 0 },
      ],
      successThreshold: 1,
      failureThreshold: 0.3,
      maxAttestationAgeSeconds: 600,
      ...overrides,
    };
  }

  async function started(overrides: Partial<CreateRolloutRequest> = {}): Promise<RolloutDto> {
    const created = await call('POST', '/api/v1/rollouts', engineer, spec(overrides));
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as RolloutDto;
    const res = await call('POST', `/api/v1/rollouts/${id}/start`, engineer);
    expect(res.status).toBe(200);
    return (await res.json()) as RolloutDto;
  }

  async function rollout(id: string): Promise<RolloutDto> {
    return (await (await call('GET', `/api/v1/rollouts/${id}`, viewer)).json()) as RolloutDto;
  }

  async function nodeStates(id: string): Promise<Record<string, RolloutNodeDto>> {
    const { nodes } = (await (await call('GET', `/api/v1/rollouts/${id}/nodes`, viewer)).json()) as {
      nodes: RolloutNodeDto[];
    };
    return Object.fromEntries(nodes.map((n) => [n.nodeId, n]));
  }

  /** A device request as `nodeId`: a token bound to a fresh software device key, and its DPoP proof. */
  async function asNode(nodeId: string, method: string, path: string, body?: unknown): Promise<Response> {
    const device = await deviceCredentialsFor(api.app, nodeId);
    const url = `${api.url}${path}`;
    const headers = await device.headers(method, url);
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  async function report(
    nodeId: string,
    step: UpdateStep,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const res = await asNode(nodeId, 'POST', '/api/v1/devices/me/updates', {
      step,
      version: '2.0.0',
      at: new Date().toISOString(),
      ...extra,
    });
    expect(res.status).toBe(202);
  }

  /** The agent's whole happy path, ending with the attestation that proves the new release booted. */
  async function succeed(nodeId: string, attestedAt = later(10)): Promise<void> {
    for (const step of [
      'downloading',
      'installed',
      'rebooting',
      'booted',
      'attested',
      'committed',
    ] as const) {
      await report(nodeId, step);
    }
    await fixtures.verdict(nodeId, true, attestedAt, '2.0.0');
  }

  async function assignment(
    nodeId: string,
  ): Promise<{ version: string | null; rollout_id: string | null } | undefined> {
    return api.db
      .selectFrom('director_assignments')
      .select(['version', 'rollout_id'])
      .where('node_id', '=', nodeId)
      .executeTakeFirst();
  }

  it('refuses bad rollout requests with a 400 naming the field, and unknown releases', async () => {
    await fleet(1);
    const bad: Array<[Partial<CreateRolloutRequest> | Record<string, unknown>, RegExp]> = [
      [{ waves: [] }, /waves/],
      [{ waves: [{ soakSeconds: 0 }] }, /percent or count/],
      [{ successThreshold: 0 }, /successThreshold/],
      [{ failureThreshold: 2 }, /failureThreshold/],
      [{ hardwareId: '../x' }, /hardwareId/],
      [{ maintenanceWindow: { start: '25:00', end: '01:00' } }, /maintenanceWindow/],
      [{ selector: { nodes: ['not-a-uuid'] } }, /selector/],
      [{ surprise: true }, /surprise/],
    ];
    for (const [overrides, reason] of bad) {
      const res = await call('POST', '/api/v1/rollouts', engineer, { ...spec(), ...overrides });
      expect(res.status, JSON.stringify(overrides)).toBe(400);
      expect(((await res.json()) as { message: string }).message).toMatch(reason);
    }
    const unknown = await call('POST', '/api/v1/rollouts', engineer, spec({ version: '9.9.9' }));
    expect(unknown.status).toBe(400);
    expect((await call('POST', '/api/v1/rollouts', viewer, spec())).status).toBe(403);
    expect((await call('POST', '/api/v1/rollouts', undefined, spec())).status).toBe(401);
  });

  it('refuses a maintenance window that starts when it ends (never or always open): 400, nothing stored', async () => {
    await fleet(1);
    const count = async (): Promise<number> =>
      (await api.db.selectFrom('rollouts').select('id').execute()).length;
    const before = await count();
    for (const window of [
      { start: '10:00', end: '10:00' },
      { start: '00:00', end: '00:00' },
    ]) {
      const res = await call('POST', '/api/v1/rollouts', engineer, spec({ maintenanceWindow: window }));
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { message: string; details: { field: string } };
      expect(answer.details.field).toBe('maintenanceWindow');
      expect(answer.message).toMatch(/maintenanceWindow: the window starts and ends at the same time/);
    }
    expect(await count()).toBe(before);
    // A window that wraps midnight is still one.
    const wrapping = await call(
      'POST',
      '/api/v1/rollouts',
      engineer,
      spec({ maintenanceWindow: { start: '22:00', end: '04:00' } }),
    );
    expect(wrapping.status).toBe(201);
  });

  it('admits only nodes with a fresh passing attestation; asks the rest; quarantines failing ones', async () => {
    const [fresh, none, stale, failing] = await fleet(4);
    await fixtures.verdict(fresh!, true, new Date());
    await fixtures.verdict(stale!, true, later(-3600));
    await fixtures.verdict(failing!, false, new Date());
    const r = await started({ waves: [{ percent: 100, soakSeconds: 0 }] });
    await ticker.tickRollout(r.id);

    const states = await nodeStates(r.id);
    expect(states[fresh!]!.state).toBe('assigned');
    expect(states[none!]!.state).toBe('waiting-attestation');
    expect(states[stale!]!.state).toBe('waiting-attestation');
    expect(states[stale!]!.reason).toMatch(/old/);
    expect(states[failing!]!.state).toBe('quarantined');
    expect(states[failing!]!.reason).toMatch(/attestation failed/);
    expect(await assignment(fresh!)).toEqual({ version: '2.0.0', rollout_id: r.id });
    expect(await assignment(none!)).toBeUndefined();
    expect(await assignment(failing!)).toBeUndefined();

    const ask = async (node: string): Promise<DeviceInstructionsDto> =>
      (await (await asNode(node, 'GET', '/api/v1/devices/me/instructions')).json()) as DeviceInstructionsDto;
    expect((await ask(none!)).attest).toBe(true);
    expect((await ask(fresh!)).attest).toBe(false);

    // The stale node attests: the next tick admits it.
    await fixtures.verdict(stale!, true, new Date());
    await ticker.tickRollout(r.id);
    expect((await nodeStates(r.id))[stale!]!.state).toBe('assigned');
  });

  it('counts success only on a passing attestation of the new release, advances waves, completes', async () => {
    const nodes = await fleet(5);
    for (const n of nodes) await fixtures.verdict(n, true, new Date());
    const r = await started({
      waves: [
        { count: 1, soakSeconds: 0 },
        { percent: 40, soakSeconds: 0 },
        { percent: 40, soakSeconds: 0 },
      ],
    });
    await ticker.tickRollout(r.id);
    let dto = await rollout(r.id);
    expect(dto.progress.map((w) => w.size)).toEqual([1, 2, 2]);
    const first = Object.values(await nodeStates(r.id)).find((n) => n.wave === 0)!;
    expect(first.state).toBe('assigned');

    // Committed without the proof: not a success, the wave does not advance.
    for (const step of [
      'downloading',
      'installed',
      'rebooting',
      'booted',
      'attested',
      'committed',
    ] as const) {
      await report(first.nodeId, step);
    }
    await ticker.tickRollout(r.id);
    expect((await nodeStates(r.id))[first.nodeId]!.state).toBe('committed');
    expect((await rollout(r.id)).currentWave).toBe(0);
    // A passing verdict of the old release proves nothing either.
    await fixtures.verdict(first.nodeId, true, later(1), '1.0.0');
    await ticker.tickRollout(r.id);
    expect((await rollout(r.id)).currentWave).toBe(0);

    await fixtures.verdict(first.nodeId, true, later(1), '2.0.0');
    await ticker.tickRollout(r.id);
    dto = await rollout(r.id);
    expect((await nodeStates(r.id))[first.nodeId]!.state).toBe('succeeded');
    expect(dto.currentWave).toBe(1);

    // Each wave is admitted at the tick that starts it; its proof comes after that.
    for (let wave = 1; wave <= 2; wave++) {
      const inWave = Object.values(await nodeStates(r.id)).filter((n) => n.wave === wave);
      expect(inWave.map((n) => n.state)).toEqual(['assigned', 'assigned']);
      for (const n of inWave) await succeed(n.nodeId, later(100 * wave + 10));
      await ticker.tickRollout(r.id, later(100 * wave + 20));
    }
    dto = await rollout(r.id);
    expect(dto.state).toBe('completed');
    expect(dto.progress.map((w) => w.succeeded)).toEqual([1, 2, 2]);
    // Finished: its nodes are free for the next rollout.
    expect(
      await api.db.selectFrom('rollout_memberships').where('rollout_id', '=', r.id).selectAll().execute(),
    ).toEqual([]);
  });

  it('refuses an update report whose bytes exceed the release image, or name no release: 400, nothing stored', async () => {
    const [node] = await fleet(1);
    await fixtures.verdict(node!, true, new Date());
    const r = await started({ waves: [{ percent: 100, soakSeconds: 0 }] });
    await ticker.tickRollout(r.id);
    const { length } = await api.db
      .selectFrom('releases')
      .select('length')
      .where('hardware_id', '=', hw)
      .where('version', '=', '2.0.0')
      .executeTakeFirstOrThrow();
    const reports = () =>
      api.db.selectFrom('device_reports').selectAll().where('node_id', '=', node!).orderBy('id').execute();
    const before = { reports: await reports(), states: await nodeStates(r.id) };
    for (const [what, body, status, reason] of [
      [
        'one byte over the image',
        { version: '2.0.0', bytes: Number(length) + 1 },
        400,
        /at most the full image's/,
      ],
      ['2^53 - 1', { version: '2.0.0', bytes: Number.MAX_SAFE_INTEGER }, 400, /at most the full image's/],
      ['past the safe integers', { version: '2.0.0', bytes: 2 ** 60 }, 400, /bytes/],
      ['a release that does not exist', { version: '9.9.9', bytes: 10 }, 400, /no release 9\.9\.9/],
    ] as const) {
      const res = await asNode(node!, 'POST', '/api/v1/devices/me/updates', {
        step: 'installed',
        at: new Date().toISOString(),
        ...body,
      });
      expect(res.status, what).toBe(status);
      expect(((await res.json()) as { message: string }).message, what).toMatch(reason);
    }
    expect({ reports: await reports(), states: await nodeStates(r.id) }).toEqual(before);
    await report(node!, 'downloading', { bytes: Number(length) });
  });

  it('holds the next wave for its soak time', async () => {
    const nodes = await fleet(2);
    for (const n of nodes) await fixtures.verdict(n, true, new Date());
    const r = await started({
      waves: [
        { count: 1, soakSeconds: 3600 },
        { percent: 100, soakSeconds: 0 },
      ],
    });
    await ticker.tickRollout(r.id);
    const first = Object.values(await nodeStates(r.id)).find((n) => n.wave === 0)!;
    await succeed(first.nodeId);
    await ticker.tickRollout(r.id, later(5));
    expect((await rollout(r.id)).currentWave).toBe(0);
    await ticker.tickRollout(r.id, later(3700));
    expect((await rollout(r.id)).currentWave).toBe(1);
  });

  it('pauses at the failure threshold with the reason; the rolled-back node gets its old release back; resume after excluding it', async () => {
    const nodes = await fleet(3);
    for (const n of nodes) await fixtures.verdict(n, true, new Date());
    const r = await started({ waves: [{ percent: 100, soakSeconds: 0 }], failureThreshold: 0.3 });
    await ticker.tickRollout(r.id);
    const [bad, ...good] = nodes;
    await report(bad!, 'downloading', { bytes: 999 });
    await report(bad!, 'installed', { slot: 'b' });
    await report(bad!, 'rebooting');
    await report(bad!, 'rolled-back', { detail: 'health check failed after boot' });
    expect(await assignment(bad!)).toEqual({ version: '1.0.0', rollout_id: null });

    await ticker.tickRollout(r.id);
    let dto = await rollout(r.id);
    expect(dto.state).toBe('paused');
    expect(dto.stateReason).toMatch(/failure threshold: wave 1 has 1 of 3 nodes failed \(33\.3% >= 30%\)/);
    expect((await nodeStates(r.id))[bad!]).toMatchObject({
      state: 'rolled-back',
      reason: 'health check failed after boot',
    });

    // A paused rollout does not tick; resuming without excluding the node pauses it again.
    expect((await ticker.tickRollout(r.id)).skipped).toBe('not-running');
    expect((await call('POST', `/api/v1/rollouts/${r.id}/resume`, engineer)).status).toBe(200);
    await ticker.tickRollout(r.id);
    expect((await rollout(r.id)).state).toBe('paused');

    const excluded = await call('POST', `/api/v1/rollouts/${r.id}/nodes/${bad}/exclude`, engineer, {
      reason: 'broken image on this board',
    });
    expect(excluded.status).toBe(200);
    expect((await call('POST', `/api/v1/rollouts/${r.id}/resume`, engineer)).status).toBe(200);
    for (const n of good) await succeed(n);
    await ticker.tickRollout(r.id, later(2));
    dto = await rollout(r.id);
    expect(dto.state).toBe('completed');
    expect(dto.progress[0]).toMatchObject({ size: 3, succeeded: 2, failed: 0, excluded: 1 });
  });

  it('fails a node that never comes back within its deadline, and gives it its old release back', async () => {
    const [silent, quick] = await fleet(2);
    for (const n of [silent!, quick!]) await fixtures.verdict(n, true, new Date());
    const r = await started({
      waves: [{ percent: 100, soakSeconds: 0 }],
      nodeDeadlineSeconds: 600,
      failureThreshold: 0.9,
      successThreshold: 0.5,
    });
    await ticker.tickRollout(r.id);
    await report(silent!, 'downloading');
    await report(silent!, 'rebooting');
    await succeed(quick!);
    await ticker.tickRollout(r.id, later(599));
    expect((await nodeStates(r.id))[silent!]!.state).toBe('rebooting');
    await ticker.tickRollout(r.id, later(601));
    const states = await nodeStates(r.id);
    expect(states[silent!]).toMatchObject({ state: 'failed' });
    expect(states[silent!]!.reason).toMatch(
      /no proven success within 600 s of admission \(last step: rebooting\)/,
    );
    expect(states[quick!]!.state).toBe('succeeded');
    expect(await assignment(silent!)).toEqual({ version: '1.0.0', rollout_id: null });
    // 1 of 2 failed is under the 90% failure threshold, 1 of 2 succeeded meets the 50% success threshold.
    expect((await rollout(r.id)).state).toBe('completed');
  });

  it('abort: nodes not yet updated lose the assignment, updated nodes keep theirs', async () => {
    const nodes = await fleet(3);
    for (const n of nodes) await fixtures.verdict(n, true, new Date());
    const r = await started({ waves: [{ percent: 100, soakSeconds: 0 }] });
    await ticker.tickRollout(r.id);
    const [updated, downloading, assigned] = nodes;
    for (const step of ['downloading', 'installed', 'rebooting', 'booted'] as const)
      await report(updated!, step);
    await report(downloading!, 'downloading');

    const res = await call('POST', `/api/v1/rollouts/${r.id}/abort`, engineer, { reason: 'wrong release' });
    expect(res.status).toBe(200);
    const dto = (await res.json()) as RolloutDto;
    expect(dto.state).toBe('aborted');
    expect(dto.stateReason).toMatch(/wrong release/);
    const states = await nodeStates(r.id);
    expect(states[downloading!]!.state).toBe('cancelled');
    expect(states[assigned!]!.state).toBe('cancelled');
    expect(states[updated!]!.state).toBe('booted');
    expect(await assignment(updated!)).toEqual({ version: '2.0.0', rollout_id: r.id });
    expect(await assignment(downloading!)).toEqual({ version: '1.0.0', rollout_id: null });
    expect(await assignment(assigned!)).toEqual({ version: '1.0.0', rollout_id: null });
    expect((await call('POST', `/api/v1/rollouts/${r.id}/resume`, engineer)).status).toBe(409);
  });

  it('refuses an overlapping rollout with the conflict, and takes nodes by label', async () => {
    const nodes = await fleet(2, { site: 'north' });
    const south = await fixtures.node(hw, '1.0.0', { site: 'south' });
    const first = await started({ selector: { labels: { site: 'north' } } });
    expect((await nodeStates(first.id))[south]).toBeUndefined();
    expect(Object.keys(await nodeStates(first.id)).sort()).toEqual([...nodes].sort());

    const created = (await (await call('POST', '/api/v1/rollouts', engineer, spec())).json()) as RolloutDto;
    const res = await call('POST', `/api/v1/rollouts/${created.id}/start`, engineer);
    expect(res.status).toBe(409);
    const body = (await res.json()) as { message: string; details: { nodes: Array<{ rollout: string }> } };
    expect(body.message).toMatch(first.id);
    expect(body.details.nodes).toHaveLength(2);
    expect((await rollout(created.id)).state).toBe('draft');
    expect(
      await api.db.selectFrom('rollout_nodes').where('rollout_id', '=', created.id).selectAll().execute(),
    ).toEqual([]);
  });

  it('never over-admits when two schedulers tick at once, and a tick that dies half way leaves nothing behind', async () => {
    const nodes = await fleet(12);
    for (const n of nodes) await fixtures.verdict(n, true, new Date());
    const r = await started({ waves: [{ percent: 100, soakSeconds: 0 }], maxConcurrent: 5 });

    // Dies after writing two of five assignments: the transaction rolls back, no node is half-admitted.
    const director = api.app.get(DirectorAssignmentRepository);
    const realAssignMany = director.assignMany.bind(director);
    const spy = vi.spyOn(director, 'assignMany').mockImplementation(async (inputs, db) => {
      await realAssignMany(inputs.slice(0, 2), db);
      throw new Error('scheduler killed');
    });
    await expect(ticker.tickRollout(r.id)).rejects.toThrow('scheduler killed');
    spy.mockRestore();
    expect(Object.values(await nodeStates(r.id)).map((n) => n.state)).toEqual(Array(12).fill('pending'));
    expect(
      await api.db.selectFrom('director_assignments').where('rollout_id', '=', r.id).selectAll().execute(),
    ).toEqual([]);

    // Two schedulers at once (a second api process on the same PostgreSQL database; with SQLite, whose
    // better-sqlite3 connection blocks its whole process while it waits for a lock, the same process).
    const second =
      database.dialect === 'postgres'
        ? await startApi({ DATABASE_URL: database.url, OTTER_DATA_DIR: api.config.dataDir })
        : undefined;
    try {
      const other = second ? second.app.get(RolloutTicker) : ticker;
      const reports = await Promise.all([
        ticker.tickRollout(r.id),
        other.tickRollout(r.id),
        ticker.tickRollout(r.id),
      ]);
      expect(reports.filter((t) => t.skipped === 'claimed-elsewhere').length).toBeGreaterThanOrEqual(1);
      const assigned = Object.values(await nodeStates(r.id)).filter((n) => n.state === 'assigned');
      expect(assigned).toHaveLength(5);
      const rows = await api.db
        .selectFrom('director_assignments')
        .select('node_id')
        .where('rollout_id', '=', r.id)
        .execute();
      expect(rows).toHaveLength(5);
    } finally {
      await second?.close();
    }
  });
});
