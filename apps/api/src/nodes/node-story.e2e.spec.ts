import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDetailDto, NodeInventory, NodeListDto } from '#otter/contracts';
import { testDatabases } from '#otter/db';
import { RolloutFixtures } from '../rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { deviceCredentialsFor, type DeviceCredentialsForTest } from '../testing/software-device-key.js';
import { TpmNodes } from '../testing/tpm-nodes.js';

// A node's whole story against the real api on both databases: the node reports its inventory, attests with
// a real (software) TPM, passes then fails on a PCR, reports update steps and a download, and takes part in a
// rollout; GET /api/v1/nodes/:id tells all of it, and every refused inventory leaves the stored one alone.

const dbs = await testDatabases();
let tpm: TpmNodes;
beforeAll(async () => {
  tpm = await TpmNodes.start();
});
afterAll(async () => {
  await tpm?.stop();
  await Promise.all(dbs.map((d) => d.drop()));
});

const INVENTORY: NodeInventory = {
  // A kernel string with a terminal escape: stored as sent, escaped where the CLI prints it.
  kernel: '6.6.31-otter\u001b[31m',
  os: { prettyName: 'Debian GNU/Linux 13 (trixie)', id: 'debian', versionId: '13' },
  bootLoader: 'u-boot',
  bootEnv: 'uboot',
  activeSlot: 'a',
  slots: { a: { version: '1.0.0' }, b: { version: null } },
  diskBytes: 32 * 1024 ** 3,
  memoryBytes: 4 * 1024 ** 3,
  agentVersion: '0.1.0',
  deviceLabels: { site: 'north-2', rack: 'r7 / shelf 3' },
};

describe.each(dbs)('node story on $name', ({ config: database }) => {
  let api: ApiHarness;
  let fixtures: RolloutFixtures;
  let viewer: string;
  let nodeId: string;
  let device: DeviceCredentialsForTest;
  let release: { id: string; length: number };

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    });
    fixtures = new RolloutFixtures(api);
    viewer = (await api.admin<{ token: string }>('POST', '/api/v1/tokens', { name: 'v', role: 'viewer' }))
      .token;
    nodeId = await tpm.seed(api.db, { state: 'active', hardwareId: 'rpi4', runningVersion: '1.0.0' });
    device = await deviceCredentialsFor(api.app, nodeId);
    // Release 1.0.0 measures PCR 9 as the TPM holds it now, so the node's quote proves it booted.
    const pcr9 = (await tpm.tools.readPcrs([9]))[9]!;
    release = { ...(await fixtures.release('rpi4', '1.0.0', { 9: pcr9 })) };
  });
  afterAll(async () => api?.close());

  async function asDevice(method: string, path: string, body?: unknown): Promise<Response> {
    const url = `${api.url}${path}`;
    const headers = await device.headers(method, url);
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  function asViewer(path: string): Promise<Response> {
    return fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${viewer}` } });
  }

  async function storedInventory(): Promise<unknown> {
    const row = await api.db
      .selectFrom('node_inventory')
      .selectAll()
      .where('node_id', '=', nodeId)
      .executeTakeFirst();
    return row && { ...row, inventory: JSON.parse(row.inventory) as unknown };
  }

  it('stores the inventory a node reports, with the time it was reported', async () => {
    const at = new Date(Date.now() - 5000).toISOString();
    const res = await asDevice('PUT', '/api/v1/devices/me/inventory', { inventory: INVENTORY, at });
    expect(res.status).toBe(200);
    const receipt = (await res.json()) as { sha256: string; receivedAt: string };
    expect(receipt.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await storedInventory()).toMatchObject({
      inventory: INVENTORY,
      reported_at: at,
      sha256: receipt.sha256,
    });
  });

  it.each([
    ['a NUL in a text', { ...INVENTORY, kernel: 'a\u0000b' }, 'inventory.kernel'],
    ['a text too long', { ...INVENTORY, kernel: 'k'.repeat(257) }, 'inventory.kernel'],
    ['a negative size', { ...INVENTORY, diskBytes: -1 }, 'inventory.diskBytes'],
    ['a size past 2^53', { ...INVENTORY, memoryBytes: 2 ** 60 }, 'inventory.memoryBytes'],
    ['a slot that is not one', { ...INVENTORY, activeSlot: 'c' }, 'inventory.activeSlot'],
    ['an unknown field', { ...INVENTORY, secret: 'x' }, 'inventory.secret'],
    [
      'a bad device label key',
      { ...INVENTORY, deviceLabels: { 'no spaces': 'x' } },
      'inventory.deviceLabels',
    ],
    [
      'too many device labels',
      {
        ...INVENTORY,
        deviceLabels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])),
      },
      'inventory.deviceLabels',
    ],
  ])(
    'refuses %s with a 400 naming the field, and keeps the stored inventory',
    async (_, inventory, field) => {
      const before = await storedInventory();
      const res = await asDevice('PUT', '/api/v1/devices/me/inventory', {
        inventory,
        at: new Date().toISOString(),
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { details: { field: string } };
      expect(body.details.field).toContain(field);
      expect(await storedInventory()).toEqual(before);
    },
  );

  it('refuses an inventory without a device token, or with a bearer token copied off the node', async () => {
    const before = await storedInventory();
    const body = JSON.stringify({
      inventory: { ...INVENTORY, kernel: 'evil' },
      at: new Date().toISOString(),
    });
    const url = `${api.url}/api/v1/devices/me/inventory`;
    const anonymous = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(anonymous.status).toBe(401);
    const copied = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
      body,
    });
    expect(copied.status).toBe(401);
    expect(await storedInventory()).toEqual(before);
  });

  it('tells the whole story: identity, inventory, verdicts with the PCR that differed, updates, rollouts', async () => {
    const passed = await tpm.attest(api.url, device, { runningVersion: '1.0.0' });
    expect(passed.status).toBe(200);
    // The pinned boot value of PCR 7 changes under the node (as after a firmware change): its next quote fails.
    const row = await api.db
      .selectFrom('nodes')
      .select('pinned_pcrs')
      .where('id', '=', nodeId)
      .executeTakeFirstOrThrow();
    const pinned = JSON.parse(row.pinned_pcrs) as Record<string, string>;
    const quoted7 = pinned['7']!;
    const reference7 = randomBytes(32).toString('hex');
    await api.db
      .updateTable('nodes')
      .set({ pinned_pcrs: JSON.stringify({ ...pinned, 7: reference7 }) })
      .where('id', '=', nodeId)
      .execute();
    const failed = await tpm.attest(api.url, device, { runningVersion: '1.0.0' });
    expect(failed.status).toBe(422);

    const stepAt = new Date().toISOString();
    expect(
      (
        await asDevice('POST', '/api/v1/devices/me/updates', {
          step: 'installed',
          version: '1.0.0',
          bytes: 700,
          slot: 'b',
          at: stepAt,
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await asDevice('POST', '/api/v1/devices/me/downloads', {
          targetPath: 'images/rpi4/1.0.0',
          method: 'full',
          bytesDownloaded: release.length,
          fullBytes: release.length,
        })
      ).status,
    ).toBe(202);
    const rolloutId = await fixtures.rolloutRows({ id: release.id, hardwareId: 'rpi4' }, [nodeId], {
      state: 'running',
      nodeState: 'downloading',
      admittedAt: new Date(),
      nodeDeadlineSeconds: 3600,
    });

    // An operator's change to the node: its audit row is part of the story.
    await api.admin('PUT', `/api/v1/nodes/${nodeId}/labels`, { labels: { site: 'north' } });

    const res = await asViewer(`/api/v1/nodes/${nodeId}`);
    expect(res.status).toBe(200);
    const detail = (await res.json()) as NodeDetailDto;
    expect(detail.node).toMatchObject({ id: nodeId, state: 'active', runningVersion: '1.0.0' });
    // The device's requests above marked it seen.
    expect(Date.now() - Date.parse(detail.node.lastSeenAt!)).toBeLessThan(60_000);
    expect(detail.identity).toMatchObject({ ekCertIssuer: 'CN=Test TPM Manufacturer' });
    expect(detail.identity.akPublicSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(detail.inventory?.value).toEqual(INVENTORY);
    expect(detail.attestation.status).toBe('failed');
    expect(detail.attestation.last).toMatchObject({
      passed: false,
      mismatches: [{ pcr: 7, quoted: quoted7, reference: reference7, source: 'pinned' }],
    });
    expect(detail.attestation.history.map((v) => v.passed)).toEqual([false, true]);
    expect(detail.attestation.history[1]).toMatchObject({
      releaseVersion: '1.0.0',
      releaseProven: true,
      mismatches: [],
    });
    expect(detail.updates.steps).toEqual([
      expect.objectContaining({
        step: 'installed',
        ok: true,
        version: '1.0.0',
        bytes: 700,
        reportedAt: stepAt,
      }),
    ]);
    expect(detail.updates.downloads).toEqual([
      expect.objectContaining({ version: '1.0.0', method: 'full', bytesDownloaded: release.length }),
    ]);
    expect(detail.rollouts).toEqual([
      expect.objectContaining({
        rolloutId,
        rolloutState: 'running',
        version: '1.0.0',
        state: 'downloading',
        wave: 0,
      }),
    ]);
    expect(detail.audit.entries[0]).toMatchObject({
      action: 'node.labels.set',
      target: { kind: 'node', id: nodeId },
      actor: { name: 'bootstrap-admin', role: 'admin' },
      outcome: 'ok',
    });
    expect(detail.audit.entries.every((e) => e.target.id === nodeId)).toBe(true);
  });

  it('answers 404 for an unknown node, 400 for an id that is none, 401 without a token', async () => {
    expect((await asViewer(`/api/v1/nodes/${randomUUID()}`)).status).toBe(404);
    expect((await asViewer('/api/v1/nodes/not-a-uuid')).status).toBe(400);
    expect((await fetch(`${api.url}/api/v1/nodes/${nodeId}`)).status).toBe(401);
  });

  it('filters the list by the attestation status and seen age the story shows', async () => {
    const list = async (query: string) => {
      const res = await asViewer(`/api/v1/nodes?${query}`);
      expect(res.status).toBe(200);
      return ((await res.json()) as NodeListDto).nodes.map((n) => n.id);
    };
    expect(await list('attestation=failed')).toContain(nodeId);
    expect(await list('attestation=passed')).not.toContain(nodeId);
    expect(await list('seenWithin=10m')).toContain(nodeId);
    expect(await list('notSeenFor=10m')).not.toContain(nodeId);
    expect(await list(`q=${nodeId.slice(0, 8)}`)).toEqual([nodeId]);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['state=asleep', 'state'],
    ['attestation=maybe', 'attestation'],
    ['seenWithin=soon', 'seenWithin'],
    ['label=site', 'label'],
    ['q=XYZ', 'q'],
    ['cursor=bm90LWEtY3Vyc29y', 'cursor'],
    ['colour=blue', 'colour'],
  ])('refuses the list query %s with a 400 naming %s', async (query, field) => {
    const res = await asViewer(`/api/v1/nodes?${query}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string; details: { field: string } };
    expect(body.details.field).toBe(field);
    expect(body.message).toContain(field);
  });
});
