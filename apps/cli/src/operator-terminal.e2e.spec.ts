import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RolloutDto, RolloutNodeDto } from '#otter/contracts';
import { testDatabases } from '#otter/db';
import { RolloutTicker } from '#otter/rollouts';
import { RolloutFixtures } from '../../api/src/rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../../api/src/testing/api-harness.js';
import {
  deviceCredentialsFor,
  type DeviceCredentialsForTest,
} from '../../api/src/testing/software-device-key.js';
import { RAW_TERMINAL_CONTROL, runOtter, type CliRun } from './testing/cli-run.js';

// Issue 9 item 6, by attack: a node (real api, its own device token) puts terminal escape sequences in what it
// reports, and an operator reads them back with `otter node list` and `otter rollout nodes`. What fits is
// stored exactly as sent and printed inert; what is too long, or holds a NUL, is refused with a 400 naming
// the field, and nothing is stored.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

/** A screen clear, a window retitle, a carriage-return overwrite, an 8-bit CSI and a right-to-left override. */
const HOSTILE = '\x1b[2J\x1b]0;owned\x07ok\rFAIL\u009b31m\u202eevil\x7f';

describe.each(dbs)('device text an operator reads, on $name', ({ config: database }) => {
  let api: ApiHarness;
  let admin: string;
  let fixtures: RolloutFixtures;
  const cwd = mkdtempSync(join(tmpdir(), 'otter-terminal-'));
  let counter = 0;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    });
    admin = (await readFile(join(api.config.dataDir, 'admin-token'), 'utf8')).trim();
    fixtures = new RolloutFixtures(api);
  });
  afterAll(async () => api?.close());

  const otter = (...args: string[]): Promise<CliRun> => runOtter(args, api.url, admin, cwd);

  /** An active node of its own hardware id, and the credentials it holds: a device key and a token bound to it. */
  async function node(): Promise<{ id: string; hw: string; device: DeviceCredentialsForTest }> {
    const hw = `term-${database.dialect}-${++counter}`;
    const id = await fixtures.node(hw, '1.0.0');
    const device = await deviceCredentialsFor(api.app, id);
    return { id, hw, device };
  }

  /** A POST as the node: its bound token and a fresh DPoP proof. */
  async function send(device: DeviceCredentialsForTest, path: string, body: unknown): Promise<Response> {
    const url = `${api.url}/api/v1/devices/me/${path}`;
    return fetch(url, {
      method: 'POST',
      headers: { ...(await device.headers('POST', url)), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /** Everything a node's refused report must leave as it was. */
  async function stored(nodeId: string): Promise<string> {
    const [reports, downloads, verdicts, nodeRow, members] = await Promise.all([
      api.db.selectFrom('device_reports').selectAll().where('node_id', '=', nodeId).execute(),
      api.db.selectFrom('downloads').selectAll().where('node_id', '=', nodeId).execute(),
      api.db.selectFrom('attestation_verdicts').selectAll().where('node_id', '=', nodeId).execute(),
      api.db.selectFrom('nodes').selectAll().where('id', '=', nodeId).executeTakeFirstOrThrow(),
      api.db.selectFrom('rollout_nodes').selectAll().where('node_id', '=', nodeId).execute(),
    ]);
    // The node's last-seen time moves with any authenticated request, refused or not: it is not what was sent.
    const { last_seen_at: _seen, ...node } = nodeRow;
    return JSON.stringify({ reports, downloads, verdicts, node, members });
  }

  function expectInert(run: CliRun): void {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).not.toMatch(RAW_TERMINAL_CONTROL);
    expect(run.stderr).not.toMatch(RAW_TERMINAL_CONTROL);
  }

  it('stores a report with escape sequences as sent; node list prints them escaped, --json keeps the value', async () => {
    const { id, device } = await node();
    const at = new Date().toISOString();
    const health = await send(device, 'reports', { kind: 'health', ok: true, event: HOSTILE, at });
    expect(health.status).toBe(202);
    const integrity = await send(device, 'reports', {
      kind: 'integrity',
      ok: false,
      event: `ima\x1b[1A\x1b[2K`,
      detail: `${HOSTILE}\nFAKE-NODE-ID  rpi4  active`,
      at,
    });
    expect(integrity.status).toBe(202);
    const reason = `integrity failure reported: ima\x1b[1A\x1b[2K (${HOSTILE}\nFAKE-NODE-ID  rpi4  active)`;
    const verdict = await api.db
      .selectFrom('attestation_verdicts')
      .select('reason')
      .where('node_id', '=', id)
      .executeTakeFirstOrThrow();
    expect(verdict.reason).toBe(reason);

    const table = await otter('node', 'list');
    expectInert(table);
    const row = table.stdout.split('\n').find((line) => line.startsWith(id))!;
    expect(row).toContain(
      'FAIL: integrity failure reported: ima\\u001b[1A\\u001b[2K (\\u001b[2J\\u001b]0;owned\\u0007ok\\rFAIL' +
        '\\u009b31m\\u202eevil\\u007f\\nFAKE-NODE-ID  rpi4  active)',
    );
    // The line feed in the detail did not make a row of its own.
    expect(table.stdout.split('\n').some((line) => line.startsWith('FAKE-NODE-ID'))).toBe(false);

    const json = await otter('node', 'list', '--json');
    expectInert(json);
    const listed = (JSON.parse(json.stdout) as { nodes: Array<{ id: string; lastVerdictReason: string }> })
      .nodes;
    expect(listed.find((n) => n.id === id)?.lastVerdictReason).toBe(reason);
  });

  it('rollout nodes prints the reason a failing node gave, escaped; --json keeps the value', async () => {
    const { id, hw, device } = await node();
    await fixtures.release(hw, '1.0.0');
    await fixtures.release(hw, '2.0.0');
    await fixtures.verdict(id, true, new Date());
    const rollout = await api.admin<RolloutDto>('POST', '/api/v1/rollouts', {
      name: `hostile ${HOSTILE}`,
      hardwareId: hw,
      version: '2.0.0',
      selector: { nodes: [id] },
      waves: [{ percent: 100, soakSeconds: 0 }],
      successThreshold: 1,
      failureThreshold: 1,
      maxAttestationAgeSeconds: 600,
    });
    await api.admin('POST', `/api/v1/rollouts/${rollout.id}/start`);
    await api.app.get(RolloutTicker).tickRollout(rollout.id);
    const detail = `${HOSTILE}\n${randomUUID()}  1  succeeded`;
    const failed = await send(device, 'updates', {
      step: 'failed',
      version: '2.0.0',
      rolloutId: rollout.id,
      detail,
      at: new Date().toISOString(),
    });
    expect(failed.status).toBe(202);

    const table = await otter('rollout', 'nodes', rollout.id);
    expectInert(table);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^${id}\\s+1\\s+failed\\s`));
    expect(lines[1]).toContain('\\u001b[2J\\u001b]0;owned\\u0007ok\\rFAIL\\u009b31m\\u202eevil\\u007f\\n');

    const json = await otter('rollout', 'nodes', rollout.id, '--json');
    expectInert(json);
    const nodes = (JSON.parse(json.stdout) as { nodes: RolloutNodeDto[] }).nodes;
    expect(nodes.map((n) => [n.nodeId, n.reason])).toEqual([[id, detail]]);

    // The rollout's own name is an operator's, but shown the same way.
    expectInert(await otter('rollout', 'show', rollout.id));
    expectInert(await otter('rollout', 'list'));
  });

  it.each([
    ['reports', 'event', { kind: 'health', ok: true, event: 'e'.repeat(201) }, /event: at most 200/],
    [
      'reports',
      'detail',
      { kind: 'health', ok: true, event: 'e', detail: 'd'.repeat(4097) },
      /detail: at most 4096/,
    ],
    [
      'reports',
      'detail',
      { kind: 'integrity', ok: false, event: 'e', detail: 'a\u0000b' },
      /detail: must not contain a NUL/,
    ],
    ['reports', 'event', { kind: 'health', ok: true, event: '' }, /event/],
    [
      'updates',
      'detail',
      { step: 'failed', version: '2.0.0', detail: 'd'.repeat(1001) },
      /detail: at most 1000/,
    ],
    ['updates', 'version', { step: 'failed', version: 'v'.repeat(65) }, /version: at most 64/],
    ['updates', 'slot', { step: 'installed', version: '2.0.0', slot: 's'.repeat(17) }, /slot: at most 16/],
    [
      'downloads',
      'targetPath',
      { targetPath: 'p\u0000', method: 'full', bytesDownloaded: 1, fullBytes: 1 },
      /targetPath: must not contain a NUL/,
    ],
  ])(
    'refuses a %s %s that is too long or holds a NUL: 400 naming it, nothing stored',
    async (path, field, body, reason) => {
      const { id, device } = await node();
      const before = await stored(id);
      const res = await send(device, path, { at: new Date().toISOString(), ...body });
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { code: string; message: string; details: { field: string } };
      expect(answer.code).toBe('VALIDATION_FAILED');
      expect(answer.details.field).toBe(field);
      expect(answer.message).toMatch(reason);
      expect(await stored(id)).toBe(before);
    },
  );

  it('takes text exactly at the limits', async () => {
    const { device } = await node();
    const at = new Date().toISOString();
    expect(
      (
        await send(device, 'reports', {
          kind: 'health',
          ok: true,
          event: 'e'.repeat(200),
          detail: 'd'.repeat(4096),
          at,
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await send(device, 'updates', {
          step: 'installed',
          version: 'v'.repeat(64),
          slot: 's'.repeat(16),
          detail: 'd'.repeat(1000),
          at,
        })
      ).status,
    ).toBe(202);
  });
});
