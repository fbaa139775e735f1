import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDetailDto, NodeInventory } from '#otter/contracts';
import { seedNodeRow } from '#otter/db';
import { startApi, type ApiHarness } from '../../../api/src/testing/api-harness.js';
import { deviceCredentialsFor } from '../../../api/src/testing/software-device-key.js';
import { RAW_TERMINAL_CONTROL, runOtter, type CliRun } from '../testing/cli-run.js';

// `otter node show` and the paging and filter flags of `otter node list`, against the real api. What a node
// says about itself (inventory, update details) arrives through the device API with escape sequences in it,
// and reaches the operator's terminal escaped.
let api: ApiHarness;
let admin: string;
const cwd = mkdtempSync(join(tmpdir(), 'otter-node-show-'));
const otter = (args: string[]): Promise<CliRun> => runOtter(args, api.url, admin, cwd);

const HOSTILE = '\u001b[2J\u001b]0;owned\u0007';
const INVENTORY: NodeInventory = {
  kernel: `6.6.31${HOSTILE}`,
  os: { prettyName: 'Debian GNU/Linux 13 (trixie)', id: 'debian', versionId: '13' },
  bootLoader: 'grub',
  bootEnv: 'grub',
  activeSlot: 'b',
  slots: { a: { version: '1.0.0' }, b: { version: '1.1.0' } },
  diskBytes: 16 * 1024 ** 3,
  memoryBytes: 2 * 1024 ** 3,
  agentVersion: '0.1.0',
  deviceLabels: { room: `lab\r${HOSTILE}` },
};

let nodeId: string;

beforeAll(async () => {
  api = await startApi();
  admin = (await readFile(join(api.config.dataDir, 'admin-token'), 'utf8')).trim();
  nodeId = await seedNodeRow(api.db, {
    hardwareId: 'x86',
    runningVersion: '1.1.0',
    labels: { site: 'north' },
  });
  // An operator's change, so that the node's audit section has a row.
  await api.admin('PUT', `/api/v1/nodes/${nodeId}/labels`, { labels: { site: 'north' } });
  const device = await deviceCredentialsFor(api.app, nodeId);
  const url = `${api.url}/api/v1/devices/me/inventory`;
  const res = await fetch(url, {
    method: 'PUT',
    headers: { ...(await device.headers('PUT', url)), 'content-type': 'application/json' },
    body: JSON.stringify({ inventory: INVENTORY, at: new Date().toISOString() }),
  });
  expect(res.status).toBe(200);
  // A failed verdict as attestation stores it: PCR 7 quoted one value where the pinned boot state has another.
  const at = new Date().toISOString();
  await api.db
    .insertInto('attestation_verdicts')
    .values({
      id: randomUUID(),
      node_id: nodeId,
      passed: 0,
      reason: 'PCR 7 differs from the pinned boot value',
      pcr_values: JSON.stringify({ 7: 'aa'.repeat(32) }),
      release_version: '1.1.0',
      created_at: at,
      pcr_mismatches: JSON.stringify([
        { pcr: 7, quoted: 'aa'.repeat(32), reference: 'bb'.repeat(32), source: 'pinned' },
      ]),
    })
    .execute();
  await api.db
    .updateTable('nodes')
    .set({
      last_verdict_passed: 0,
      last_verdict_reason: 'PCR 7 differs from the pinned boot value',
      last_verdict_at: at,
    })
    .where('id', '=', nodeId)
    .execute();
});
afterAll(async () => api?.close());

describe('otter node show', () => {
  it("prints the node's story with what the node sent escaped, and the PCR that differed", async () => {
    const run = await otter(['node', 'show', nodeId]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).not.toMatch(RAW_TERMINAL_CONTROL);
    expect(run.stdout).toMatch(/^ {2}kernel +6\.6\.31\\u001b\[2J\\u001b\]0;owned\\u0007$/m);
    expect(run.stdout).toMatch(/^ {2}device labels +room=lab\\r\\u001b\[2J/m);
    expect(run.stdout).toMatch(/^node\s+[0-9a-f-]{36}$/m);
    expect(run.stdout).toMatch(/^labels\s+site=north$/m);
    expect(run.stdout).toMatch(/^ {2}slot b\s+1\.1\.0$/m);
    expect(run.stdout).toMatch(/^ {2}disk\s+16\.0 GiB$/m);
    expect(run.stdout).toMatch(/^attestation\s+failed \(a pass is fresh for 1d\)$/m);
    expect(run.stdout).toContain(`PCR 7: quoted ${'aa'.repeat(32)}, pinned ${'bb'.repeat(32)}`);
    expect(run.stdout).toContain('update steps: none');
    expect(run.stdout).toContain('rollouts: none');
    expect(run.stdout).toMatch(/^ {2}\S+ +node\.labels\.set +bootstrap-admin \(admin\) +ok$/m);
  });

  it('prints the API answer with --json, still terminal-safe', async () => {
    const run = await otter(['node', 'show', nodeId, '--json']);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(RAW_TERMINAL_CONTROL);
    const detail = JSON.parse(run.stdout) as NodeDetailDto;
    expect(detail.inventory?.value).toEqual(INVENTORY);
    expect(detail.attestation.last?.mismatches).toEqual([
      { pcr: 7, quoted: 'aa'.repeat(32), reference: 'bb'.repeat(32), source: 'pinned' },
    ]);
  });

  it('says why for an unknown node', async () => {
    const run = await otter(['node', 'show', randomUUID()]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/404 NODE_NOT_FOUND/);
  });
});

describe('otter node list paging and filters', () => {
  it('pages with --limit and --cursor, says where the next page starts, and --all follows every page', async () => {
    const more = [];
    // Enrolled a second apart: the list's order is the enrollment order.
    for (let i = 0; i < 3; i++) {
      const createdAt = new Date(Date.now() - (3 - i) * 1000).toISOString();
      more.push(await seedNodeRow(api.db, { hardwareId: 'arm64', createdAt }));
    }
    const first = await otter(['node', 'list', '--hardware', 'arm64', '--limit', '2', '--json']);
    const page1 = JSON.parse(first.stdout) as { nodes: Array<{ id: string }>; nextCursor: string };
    expect(page1.nodes.map((n) => n.id)).toEqual(more.slice(0, 2));
    const table = await otter(['node', 'list', '--hardware', 'arm64', '--limit', '2']);
    expect(table.stderr).toBe(`more nodes: --cursor ${page1.nextCursor} (or --all)\n`);
    const second = await otter([
      'node',
      'list',
      '--hardware',
      'arm64',
      '--limit',
      '2',
      '--cursor',
      page1.nextCursor,
      '--json',
    ]);
    expect(JSON.parse(second.stdout)).toMatchObject({ nodes: [{ id: more[2] }], nextCursor: null });
    const all = await otter(['node', 'list', '--hardware', 'arm64', '--limit', '1', '--all', '--json']);
    expect((JSON.parse(all.stdout) as { nodes: Array<{ id: string }> }).nodes.map((n) => n.id)).toEqual(more);
  });

  it('narrows by label, attestation status and id prefix', async () => {
    const ids = async (...args: string[]) =>
      (
        JSON.parse((await otter(['node', 'list', ...args, '--json'])).stdout) as {
          nodes: Array<{ id: string }>;
        }
      ).nodes.map((n) => n.id);
    expect(await ids('--label', 'site=north')).toEqual([nodeId]);
    expect(await ids('--attestation', 'failed')).toEqual([nodeId]);
    expect(await ids('--search', nodeId.slice(0, 6), '--hardware', 'x86')).toEqual([nodeId]);
    expect(await ids('--label', 'site=north', '--label', 'site=south')).toEqual([]);
  });

  it("passes on the server's reason for a bad filter", async () => {
    const run = await otter(['node', 'list', '--not-seen-for', 'a while']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /400 VALIDATION_FAILED: invalid query: notSeenFor: a duration like 90s, 15m, 1h or 7d/,
    );
  });
});
