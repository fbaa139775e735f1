import 'reflect-metadata';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreateRolloutRequest, RolloutDto, UpdateStep } from '#otter/contracts';
import { testDatabases } from '#otter/db';
import { RolloutTicker } from '#otter/rollouts';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { deviceCredentialsFor, type DeviceCredentialsForTest } from '../testing/software-device-key.js';
import { TpmNodes } from '../testing/tpm-nodes.js';
import { RolloutFixtures } from './testing/rollout-fixtures.js';

// "Success is never the agent's word", attempted against the real api on both databases: a rollout of a
// release Otter could never prove is refused, and a node whose quote matches only its pinned boot PCRs is
// never counted as having booted the new release. Attestations come from a real swtpm.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

let tpm: TpmNodes;
beforeAll(async () => {
  tpm = await TpmNodes.start();
}, 120_000);
afterAll(async () => tpm?.stop());

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe.each(dbs)('proof of a release on $name', ({ config: database }) => {
  let api: ApiHarness;
  let admin: string;
  let fixtures: RolloutFixtures;
  let ticker: RolloutTicker;
  let counter = 0;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    });
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    fixtures = new RolloutFixtures(api);
    ticker = api.app.get(RolloutTicker);
  });
  afterAll(async () => api?.close());

  function call(method: string, path: string, token: string, body?: unknown): Promise<Response> {
    return fetch(`${api.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  /** A device request: the node's bound token and a fresh DPoP proof. */
  async function asNode(
    device: DeviceCredentialsForTest,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Response> {
    const url = `${api.url}${path}`;
    return fetch(url, {
      method,
      headers: {
        ...(await device.headers(method, url)),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  function spec(hardwareId: string, version: string): CreateRolloutRequest {
    return {
      name: `r-${randomUUID()}`,
      hardwareId,
      version,
      selector: {},
      waves: [{ percent: 100, soakSeconds: 0 }],
      successThreshold: 1,
      failureThreshold: 1,
      maxAttestationAgeSeconds: 600,
    };
  }

  const stored = async () => ({
    rollouts: await api.db.selectFrom('rollouts').selectAll().orderBy('id').execute(),
    nodes: await api.db.selectFrom('rollout_nodes').selectAll().orderBy('node_id').execute(),
    memberships: await api.db.selectFrom('rollout_memberships').selectAll().orderBy('node_id').execute(),
    assignments: await api.db.selectFrom('director_assignments').selectAll().orderBy('node_id').execute(),
  });

  async function nodeState(rolloutId: string, nodeId: string): Promise<string> {
    const row = await api.db
      .selectFrom('rollout_nodes')
      .select('state')
      .where('rollout_id', '=', rolloutId)
      .where('node_id', '=', nodeId)
      .executeTakeFirstOrThrow();
    return row.state;
  }

  it('refuses to create or start a rollout of a release without measurements beyond the pinned PCRs: 422 with the reason, nothing stored', async () => {
    const hw = `board-${database.dialect}-${++counter}`;
    const node = await fixtures.node(hw, '1.0.0');
    await fixtures.verdict(node, true, new Date());
    const unmeasured = await fixtures.release(hw, '2.0.0', {});
    await fixtures.release(hw, '2.1.0', { 0: 'aa'.repeat(32), 7: 'bb'.repeat(32) });
    // A release row whose image was never signed (the signed target is what attestation reads).
    await api.db
      .insertInto('releases')
      .values({
        id: randomUUID(),
        hardware_id: hw,
        version: '2.2.0',
        target_path: `images/${hw}/2.2.0`,
        sha256: 'cd'.repeat(32),
        length: 1000,
        blob_key: 'test/none',
        measurements: JSON.stringify({ 9: 'ee'.repeat(32) }),
        notes: '',
        created_at: new Date().toISOString(),
        created_by: 'test',
      })
      .execute();
    const before = await stored();

    for (const [version, reason] of [
      ['2.0.0', `release 2.0.0 for ${hw} has no signed reference measurements`],
      ['2.1.0', `release 2.1.0 for ${hw} measures only pinned boot PCRs (0, 7)`],
      ['2.2.0', `release 2.2.0 for ${hw} is not signed in the image repository`],
    ] as const) {
      const res = await call('POST', '/api/v1/rollouts', admin, spec(hw, version));
      expect(res.status, version).toBe(422);
      const body = (await res.json()) as { code: string; message: string; details: unknown };
      expect(body.code).toBe('ROLLOUT_RELEASE_UNMEASURED');
      expect(body.message).toContain(reason);
      expect(body.message).toContain('so no node could prove it booted it');
      expect(body.message).toContain('outside the pinned PCRs 0, 1, 2, 3, 4, 5, 6, 7');
      expect(body.details).toMatchObject({ hardwareId: hw, version, pinnedPcrs: [0, 1, 2, 3, 4, 5, 6, 7] });
    }
    expect(await stored()).toEqual(before);

    // A draft written before the check existed is refused at start, and stays a draft with no nodes.
    const draft = await fixtures.rolloutRows({ id: unmeasured.id, hardwareId: hw }, [], {
      state: 'draft',
      nodeState: 'pending',
      admittedAt: new Date(),
      nodeDeadlineSeconds: 600,
    });
    const beforeStart = await stored();
    const start = await call('POST', `/api/v1/rollouts/${draft}/start`, admin);
    expect(start.status).toBe(422);
    expect(((await start.json()) as { code: string }).code).toBe('ROLLOUT_RELEASE_UNMEASURED');
    expect(await stored()).toEqual(beforeStart);

    // The control: the same fleet and spec with a measured release is taken.
    await fixtures.release(hw, '3.0.0');
    expect((await call('POST', '/api/v1/rollouts', admin, spec(hw, '3.0.0'))).status).toBe(201);
  });

  it('a node that attests the new release with only its pinned PCRs matching is never counted as succeeded', async () => {
    const hw = `board-${database.dialect}-${++counter}`;
    const release = await fixtures.release(hw, '2.0.0', {});
    const nodeId = await tpm.seed(api.db, { state: 'active', hardwareId: hw, runningVersion: '1.0.0' });
    const device = await deviceCredentialsFor(api.app, nodeId);
    // Started before releases needed measurements: running, the node admitted and reporting committed.
    const rolloutId = await fixtures.rolloutRows({ id: release.id, hardwareId: hw }, [nodeId], {
      state: 'running',
      nodeState: 'committed',
      admittedAt: new Date(Date.now() - 1000),
      nodeDeadlineSeconds: 600,
    });

    const attested = await tpm.attest(api.url, device, { runningVersion: '2.0.0' });
    expect(attested.status).toBe(200);
    expect(attested.verdict).toMatchObject({ passed: true, releaseVersion: '2.0.0', releaseProven: false });
    expect(attested.verdict!.reason).toMatch(
      /^matches the pinned boot state only: release 2\.0\.0 has no signed measurements beyond the pinned PCRs/,
    );

    let tick = await ticker.tickRollout(rolloutId);
    expect(tick.succeeded).toBe(0);
    expect(await nodeState(rolloutId, nodeId)).toBe('committed');
    // Past its deadline without proof it fails, as any unproven node does.
    tick = await ticker.tickRollout(rolloutId, new Date(Date.now() + 601_000));
    expect(tick).toMatchObject({ succeeded: 0, timedOut: 1 });
    expect(await nodeState(rolloutId, nodeId)).toBe('failed');
  });

  it('a measured release is proven only by a quote of its measured PCR: leaving it out or a wrong value does not count', async () => {
    const hw = `board-${database.dialect}-${++counter}`;
    // What the release's boot will leave in PCR 9 of this TPM: one extend of the image digest.
    const digest = sha256(randomBytes(64));
    const [pcr9] = Object.values(await tpm.tools.readPcrs([9]));
    const expected = sha256(Buffer.concat([Buffer.from(pcr9!, 'hex'), Buffer.from(digest, 'hex')]));
    await fixtures.release(hw, '1.0.0');
    await fixtures.release(hw, '2.0.0', { 9: expected });
    const nodeId = await tpm.seed(api.db, { state: 'active', hardwareId: hw, runningVersion: '1.0.0' });
    await fixtures.verdict(nodeId, true, new Date());
    const device = await deviceCredentialsFor(api.app, nodeId);

    const created = await call('POST', '/api/v1/rollouts', admin, spec(hw, '2.0.0'));
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as RolloutDto;
    expect((await call('POST', `/api/v1/rollouts/${id}/start`, admin)).status).toBe(200);
    await ticker.tickRollout(id);
    expect(await nodeState(id, nodeId)).toBe('assigned');
    for (const step of [
      'downloading',
      'installed',
      'rebooting',
      'booted',
      'attested',
      'committed',
    ] as UpdateStep[]) {
      const res = await asNode(device, 'POST', '/api/v1/devices/me/updates', {
        step,
        version: '2.0.0',
        at: new Date().toISOString(),
      });
      expect(res.status).toBe(202);
    }

    // Quoting only the pinned PCRs: the release's PCR 9 is missing, so the verdict fails.
    const pinnedOnly = await tpm.attest(api.url, device, {
      runningVersion: '2.0.0',
      pcrs: [0, 1, 2, 3, 4, 5, 6, 7],
    });
    expect(pinnedOnly.status).toBe(422);
    expect(pinnedOnly.verdict).toMatchObject({ passed: false, releaseProven: false });
    expect(pinnedOnly.message).toMatch(/PCRs 9 not quoted/);
    // PCR 9 quoted, but not the release's value (the node did not boot it).
    const wrong = await tpm.attest(api.url, device, { runningVersion: '2.0.0' });
    expect(wrong.status).toBe(422);
    expect(wrong.message).toMatch(/PCR 9 differs from the release reference/);
    expect((await ticker.tickRollout(id)).succeeded).toBe(0);
    expect(await nodeState(id, nodeId)).toBe('committed');

    // The control: the boot measured as the release says, and the quote proves it.
    await tpm.tools.extendPcr(9, digest);
    const proven = await tpm.attest(api.url, device, { runningVersion: '2.0.0' });
    expect(proven.status).toBe(200);
    expect(proven.verdict).toMatchObject({ passed: true, releaseProven: true });
    expect(proven.verdict!.reason).toBe(
      "matches the pinned boot state and release 2.0.0's measurements of PCR 9",
    );
    expect((await ticker.tickRollout(id)).succeeded).toBe(1);
    expect(await nodeState(id, nodeId)).toBe('succeeded');
  });
});
