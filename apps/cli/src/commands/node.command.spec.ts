import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreatedTokenDto, NodeIdentityState, Role } from '#otter/contracts';
import { startApi, type ApiHarness } from '../../../api/src/testing/api-harness.js';
import type { CliContext } from '../cli-context.js';
import { runCli } from '../main.js';
import { seedNodeRow } from '#otter/db';

// `otter node ...` against the real api: the commands' output and exit codes, and the node state machine and
// roles the api enforces behind them. Nodes are written straight into the api's database in the state a test
// needs; how a node gets there through a TPM is test/agent-cli.e2e.spec.ts.
let api: ApiHarness;
let adminToken: string;
const cwd = mkdtempSync(join(tmpdir(), 'otter-node-cli-'));

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function otter(args: string[], token: string = adminToken): Promise<Run> {
  const stdout = new Capture();
  const stderr = new Capture();
  const ctx: CliContext = { env: { OTTER_SERVER: api.url, OTTER_TOKEN: token }, cwd, stdout, stderr };
  const code = await runCli(args, ctx);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

function seedNode(state: NodeIdentityState, pinnedPcrs: Record<string, string> = {}): Promise<string> {
  return seedNodeRow(api.db, { state, pinnedPcrs, runningVersion: '1.0.0' });
}

async function seedVerdict(
  nodeId: string,
  verdict: { passed: boolean; reason: string; secondsAgo: number; pcrValues?: Record<string, string> },
): Promise<void> {
  await api.db
    .insertInto('attestation_verdicts')
    .values({
      id: randomUUID(),
      node_id: nodeId,
      passed: verdict.passed ? 1 : 0,
      reason: verdict.reason,
      pcr_values: JSON.stringify(verdict.pcrValues ?? {}),
      release_version: '1.0.0',
      created_at: new Date(Date.now() - verdict.secondsAgo * 1000).toISOString(),
    })
    .execute();
}

async function stateOf(id: string): Promise<string> {
  return (await api.db.selectFrom('nodes').select('state').where('id', '=', id).executeTakeFirstOrThrow())
    .state;
}

async function tokenWithRole(role: Role): Promise<string> {
  const run = await otter(['token', 'create', '--name', `${role}-${randomUUID()}`, '--role', role]);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as CreatedTokenDto).token;
}

beforeAll(async () => {
  api = await startApi({
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
  });
  adminToken = (await readFile(join(api.config.dataDir, 'admin-token'), 'utf8')).trim();
});
afterAll(async () => {
  await api?.close();
});

describe('otter node list', () => {
  it('says "no nodes" on stderr for an empty fleet, and prints an empty list with --json', async () => {
    expect(await otter(['node', 'list'])).toEqual({ code: 0, stdout: '', stderr: 'no nodes\n' });
    const json = await otter(['node', 'list', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ nodes: [] });
  });

  it('prints a table with state, last verdict and its age, and the same as JSON with --json', async () => {
    const pending = await seedNode('pending-approval');
    const passing = await seedNode('active');
    await seedVerdict(passing, { passed: true, reason: 'quote matches release 1.0.0', secondsAgo: 42 });
    const failing = await seedNode('active');
    await seedVerdict(failing, {
      passed: false,
      reason: 'PCR 9 differs from the release reference',
      secondsAgo: 5,
    });

    const table = await otter(['node', 'list']);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+HARDWARE\s+STATE\s+VERSION\s+LAST VERDICT\s+AGE\s+ENROLLED\s+LABELS$/);
    const row = (id: string): string => lines.find((l) => l.startsWith(id))!;
    const enrolled = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ';
    expect(row(pending)).toMatch(
      new RegExp(`^${pending}\\s+rpi4\\s+pending-approval\\s+1\\.0\\.0\\s+-\\s+-\\s+${enrolled}\\s+-$`),
    );
    expect(row(passing)).toMatch(
      new RegExp(
        `^${passing}\\s+rpi4\\s+active\\s+1\\.0\\.0\\s+pass: quote matches release 1\\.0\\.0\\s+4[23]s\\s+${enrolled}\\s+-$`,
      ),
    );
    expect(row(failing)).toMatch(/\sFAIL: PCR 9 differs from the release reference\s+[56]s\s/);

    const json = await otter(['node', 'list', '--json']);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const nodes = (JSON.parse(json.stdout) as { nodes: Array<Record<string, unknown>> }).nodes;
    const byId = (id: string) => nodes.find((n) => n.id === id);
    expect(byId(pending)).toEqual({
      id: pending,
      hardware: 'rpi4',
      state: 'pending-approval',
      runningVersion: '1.0.0',
      lastVerdict: null,
      lastVerdictReason: null,
      lastVerdictAgeSeconds: null,
      labels: {},
    });
    expect(byId(passing)).toEqual({
      id: passing,
      hardware: 'rpi4',
      state: 'active',
      runningVersion: '1.0.0',
      lastVerdict: 'pass',
      lastVerdictReason: 'quote matches release 1.0.0',
      lastVerdictAgeSeconds: expect.any(Number),
      labels: {},
    });
    expect(byId(passing)!.lastVerdictAgeSeconds).toBeGreaterThanOrEqual(42);
    expect(byId(passing)!.lastVerdictAgeSeconds).toBeLessThanOrEqual(44);
    expect(byId(failing)).toMatchObject({
      lastVerdict: 'fail',
      lastVerdictReason: expect.stringMatching(/PCR 9 differs/),
    });
  });
});

describe('otter node approve / reject / revoke', () => {
  it('approve admits a pending node; approving it again, or an active node, is a 409 that changes nothing', async () => {
    const id = await seedNode('pending-approval');
    expect(await otter(['node', 'approve', id])).toEqual({
      code: 0,
      stdout: `${id}: approved\n`,
      stderr: '',
    });
    expect(await stateOf(id)).toBe('approved');
    expect(await otter(['node', 'approve', id])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 409 NODE_STATE_INVALID: node is approved; cannot become approved\n',
    });

    const active = await seedNode('active');
    expect(await otter(['node', 'approve', active])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 409 NODE_STATE_INVALID: node is active; cannot become approved\n',
    });
    expect(await stateOf(active)).toBe('active');
  });

  it('reject refuses a pending node, which can then be neither approved nor rejected again', async () => {
    const id = await seedNode('pending-approval');
    expect(await otter(['node', 'reject', id])).toEqual({ code: 0, stdout: `${id}: rejected\n`, stderr: '' });
    expect(await stateOf(id)).toBe('rejected');
    for (const command of ['approve', 'reject']) {
      const run = await otter(['node', command, id]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^error: 409 NODE_STATE_INVALID: node is rejected; cannot become /);
    }
    expect(await stateOf(id)).toBe('rejected');
  });

  it('revoke ends an active node; revoking it again is a 409', async () => {
    const id = await seedNode('active');
    expect(await otter(['node', 'revoke', id])).toEqual({ code: 0, stdout: `${id}: revoked\n`, stderr: '' });
    expect(await stateOf(id)).toBe('revoked');
    expect(await otter(['node', 'revoke', id])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 409 NODE_STATE_INVALID: node is revoked; cannot become revoked\n',
    });
  });

  it('an unknown node id is a 404, a malformed one a 400', async () => {
    const unknown = randomUUID();
    expect(await otter(['node', 'approve', unknown])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 404 NODE_NOT_FOUND: no such node\n',
    });
    const malformed = await otter(['node', 'revoke', 'not-a-uuid']);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/^error: 400 /);
  });
});

describe('otter node repin', () => {
  it('refuses a node that never attested, with a clear error', async () => {
    const id = await seedNode('active', { '0': 'aa'.repeat(32) });
    expect(await otter(['node', 'repin', id])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 409 NODE_STATE_INVALID: the node has no quote to pin from: ask it to attest first\n',
    });
  });

  it("pins the firmware/boot PCRs of the node's latest quote", async () => {
    const id = await seedNode('active', { '0': 'aa'.repeat(32), '7': 'bb'.repeat(32) });
    await seedVerdict(id, {
      passed: false,
      reason: 'PCR 0 differs from the pinned baseline',
      secondsAgo: 1,
      pcrValues: { '0': 'cc'.repeat(32), '7': 'bb'.repeat(32), '9': 'dd'.repeat(32) },
    });
    expect(await otter(['node', 'repin', id])).toEqual({ code: 0, stdout: `${id}: active\n`, stderr: '' });
    const row = await api.db
      .selectFrom('nodes')
      .select('pinned_pcrs')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    // Only the pinned PCRs move; PCR 9 (the booted release) is checked against releases, never pinned.
    expect(JSON.parse(row.pinned_pcrs)).toEqual({ '0': 'cc'.repeat(32), '7': 'bb'.repeat(32) });
  });
});

describe('otter node allow', () => {
  const allowlist = () =>
    api.db.selectFrom('enrollment_allowlist').select(['kind', 'value', 'note']).execute();

  it('refuses to run with neither --ek-serial nor --ek-public-sha256, and allows nothing', async () => {
    const before = await allowlist();
    expect(await otter(['node', 'allow', '--note', 'oops'])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: give --ek-serial or --ek-public-sha256\n',
    });
    expect(await allowlist()).toEqual(before);
  });

  it('allow-lists an EK certificate serial and an EK public key hash, lowercased; refuses a non-hex value', async () => {
    const hash = 'AB'.repeat(32);
    expect(
      await otter([
        'node',
        'allow',
        '--ek-serial',
        '0A1B2C',
        '--ek-public-sha256',
        hash,
        '--note',
        'batch 7',
      ]),
    ).toEqual({ code: 0, stdout: 'allowed\n', stderr: '' });
    expect(await allowlist()).toEqual(
      expect.arrayContaining([
        { kind: 'ek-serial', value: '0a1b2c', note: 'batch 7' },
        { kind: 'ek-public-sha256', value: 'ab'.repeat(32), note: 'batch 7' },
      ]),
    );
    const before = await allowlist();
    const bad = await otter(['node', 'allow', '--ek-serial', 'not-hex']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: 400 /);
    expect(await allowlist()).toEqual(before);
  });
});

describe('roles', () => {
  it('a viewer can list nodes but cannot approve one (403)', async () => {
    const id = await seedNode('pending-approval');
    const viewer = await tokenWithRole('viewer');
    expect((await otter(['node', 'list', '--json'], viewer)).code).toBe(0);
    const approve = await otter(['node', 'approve', id], viewer);
    expect(approve).toMatchObject({ code: 1, stdout: '' });
    expect(approve.stderr).toMatch(/^error: 403 FORBIDDEN: /);
    expect(await stateOf(id)).toBe('pending-approval');
  });

  it('a release engineer (a CI token) can neither approve, reject, revoke nor re-pin a node: 403, nothing changes', async () => {
    const engineer = await tokenWithRole('release-engineer');
    const pending = await seedNode('pending-approval');
    const active = await seedNode('active', { '0': 'aa'.repeat(32) });
    await seedVerdict(active, {
      passed: false,
      reason: 'PCR 0 differs from the pinned baseline',
      secondsAgo: 1,
      pcrValues: { '0': 'cc'.repeat(32) },
    });
    const row = (id: string) =>
      api.db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const before = [await row(pending), await row(active)];
    for (const [command, id] of [
      ['approve', pending],
      ['reject', pending],
      ['revoke', active],
      ['repin', active],
    ] as const) {
      const run = await otter(['node', command, id], engineer);
      expect(run, command).toMatchObject({ code: 1, stdout: '' });
      expect(run.stderr, command).toMatch(/^error: 403 FORBIDDEN: this action requires the admin role/);
    }
    expect([await row(pending), await row(active)]).toEqual(before);

    expect(await otter(['node', 'approve', pending])).toMatchObject({
      code: 0,
      stdout: `${pending}: approved\n`,
    });
  });
});
