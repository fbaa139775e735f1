import 'reflect-metadata';
import { randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreatedTokenDto, NodeIdentityState, Role } from '#otter/contracts';
import { startApi, type ApiHarness } from '../../../api/src/testing/api-harness.js';
import type { CliContext } from '../cli-context.js';
import { runCli } from '../main.js';
import { seedNodeRow } from '#otter/db';
import { ekIssuerSerialSha256 } from '#otter/tpm-wire';
import { X509CertificateGenerator } from '@peculiar/x509';

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
  const at = new Date(Date.now() - verdict.secondsAgo * 1000).toISOString();
  await api.db
    .insertInto('attestation_verdicts')
    .values({
      id: randomUUID(),
      node_id: nodeId,
      passed: verdict.passed ? 1 : 0,
      reason: verdict.reason,
      pcr_values: JSON.stringify(verdict.pcrValues ?? {}),
      release_version: '1.0.0',
      created_at: at,
    })
    .execute();
  // The node row keeps its newest verdict, as NodeRepository.addVerdict writes it.
  await api.db
    .updateTable('nodes')
    .set({
      last_verdict_passed: verdict.passed ? 1 : 0,
      last_verdict_reason: verdict.reason,
      last_verdict_at: at,
    })
    .where('id', '=', nodeId)
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
    expect(JSON.parse(json.stdout)).toEqual({ nodes: [], nextCursor: null });
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
    expect(lines[0]).toMatch(
      /^ID\s+HARDWARE\s+STATE\s+VERSION\s+LAST VERDICT\s+AGE\s+LAST SEEN\s+ENROLLED\s+LABELS$/,
    );
    const row = (id: string): string => lines.find((l) => l.startsWith(id))!;
    const enrolled = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ';
    expect(row(pending)).toMatch(
      new RegExp(`^${pending}\\s+rpi4\\s+pending-approval\\s+1\\.0\\.0\\s+-\\s+-\\s+-\\s+${enrolled}\\s+-$`),
    );
    expect(row(passing)).toMatch(
      new RegExp(
        `^${passing}\\s+rpi4\\s+active\\s+1\\.0\\.0\\s+pass: quote matches release 1\\.0\\.0\\s+4[23]s\\s+-\\s+${enrolled}\\s+-$`,
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
      lastSeenAt: null,
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
      lastSeenAt: null,
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
    api.db.selectFrom('enrollment_allowlist').select(['kind', 'value', 'note']).orderBy('value').execute();

  it('refuses to run with nothing to allow, and allows nothing', async () => {
    const before = await allowlist();
    expect(await otter(['node', 'allow', '--note', 'oops'])).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'error: give --ek-certificate FILE, --ek-issuer DN with --ek-serial HEX, or --ek-public-sha256 HEX\n',
    });
    expect(await allowlist()).toEqual(before);
  });

  it('refuses an EK serial without its issuer (another CA may issue the same serial), and allows nothing', async () => {
    const before = await allowlist();
    for (const args of [
      ['--ek-serial', '0a1b2c'],
      ['--ek-issuer', 'CN=Example TPM CA'],
    ]) {
      const run = await otter(['node', 'allow', ...args]);
      expect(run).toMatchObject({ code: 1, stdout: '' });
      expect(run.stderr).toMatch(/^error: an EK serial names a certificate only with its issuer/);
    }
    expect(await allowlist()).toEqual(before);
  });

  it('allow-lists an EK certificate by issuer + serial (as one hash) and an EK public area hash, lowercased', async () => {
    const hash = 'AB'.repeat(32);
    expect(
      await otter([
        'node',
        'allow',
        '--ek-issuer',
        'CN=Example TPM CA,O=Example',
        '--ek-serial',
        '0A:1B:2C',
        '--ek-public-sha256',
        hash,
        '--note',
        'batch 7',
      ]),
    ).toEqual({ code: 0, stdout: 'allowed\n', stderr: '' });
    expect(await allowlist()).toEqual(
      expect.arrayContaining([
        {
          kind: 'ek-issuer-serial',
          // The issuer as the api renders a verified certificate's, the serial without separators.
          value: ekIssuerSerialSha256('CN=Example TPM CA, O=Example', '0a1b2c'),
          note: 'batch 7',
        },
        { kind: 'ek-public-sha256', value: 'ab'.repeat(32), note: 'batch 7' },
      ]),
    );
  });

  it('reads issuer and serial from an EK certificate file (PEM or DER)', async () => {
    const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(algorithm, false, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const certificate = await X509CertificateGenerator.createSelfSigned({
      serialNumber: '7e57c0de',
      name: 'CN=Certificate File CA, O=Example',
      keys,
      signingAlgorithm: algorithm,
    });
    const pem = join(cwd, 'ek.pem');
    const der = join(cwd, 'ek.der');
    await writeFile(pem, certificate.toString('pem'));
    await writeFile(der, Buffer.from(certificate.rawData));
    const expected = {
      kind: 'ek-issuer-serial',
      value: ekIssuerSerialSha256('CN=Certificate File CA, O=Example', '7e57c0de'),
    };
    expect(await otter(['node', 'allow', '--ek-certificate', 'ek.pem', '--note', 'pem'])).toEqual({
      code: 0,
      stdout: 'allowed\n',
      stderr: '',
    });
    expect(await allowlist()).toEqual(expect.arrayContaining([{ ...expected, note: 'pem' }]));
    expect((await otter(['node', 'allow', '--ek-certificate', der])).code).toBe(0);
    const notACertificate = await otter(['node', 'allow', '--ek-certificate', 'package.json']);
    expect(notACertificate.code).toBe(1);
  });

  it('refuses a non-hex serial or public hash and an issuer that is not a distinguished name, allowing nothing', async () => {
    const before = await allowlist();
    for (const args of [
      ['--ek-issuer', 'CN=Example TPM CA', '--ek-serial', 'not-hex'],
      ['--ek-issuer', 'just some words', '--ek-serial', '0a'],
      ['--ek-public-sha256', 'abcd'],
    ]) {
      const run = await otter(['node', 'allow', ...args]);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr).toMatch(/^error: 400 (VALIDATION_FAILED|EK_CERT_MALFORMED): /);
    }
    expect(await allowlist()).toEqual(before);
  });
});

describe('otter node re-enroll', () => {
  const windowOf = (id: string) =>
    api.db
      .selectFrom('nodes')
      .select(['state', 'reenroll_until', 'reenroll_by', 'ak_public', 'updated_at'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();

  it('opens a window for an active or approved node, named after the admin token, for OTTER_REENROLL_WINDOW', async () => {
    for (const state of ['active', 'approved', 'pending-approval'] as const) {
      const id = await seedNode(state);
      const run = await otter(['node', 're-enroll', id]);
      expect(run).toMatchObject({ code: 0, stderr: '' });
      expect(run.stdout).toMatch(
        new RegExp(
          `^${id}: ${state}; re-enrollment open until \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z: run \`otter-agent enroll\``,
        ),
      );
      const row = await windowOf(id);
      expect(row.state).toBe(state);
      const seconds = (Date.parse(row.reenroll_until!) - Date.now()) / 1000;
      expect(seconds).toBeGreaterThan(86_400 - 30);
      expect(seconds).toBeLessThanOrEqual(86_400);
      expect(row.reenroll_by).toMatch(/^bootstrap-admin \(token [0-9a-f-]+\)$/);
    }
  });

  it('refuses a revoked or rejected node (their TPM never comes back), and a node whose EK key is unknown', async () => {
    for (const state of ['revoked', 'rejected'] as const) {
      const id = await seedNode(state);
      const before = await windowOf(id);
      expect(await otter(['node', 're-enroll', id])).toEqual({
        code: 1,
        stdout: '',
        stderr: `error: 409 NODE_STATE_INVALID: node is ${state}: the TPM of a ${state} node never enrolls again\n`,
      });
      expect(await windowOf(id)).toEqual(before);
    }
    const unknownKey = await seedNode('active');
    await api.db.updateTable('nodes').set({ ek_key_sha256: null }).where('id', '=', unknownKey).execute();
    const before = await windowOf(unknownKey);
    const run = await otter(['node', 're-enroll', unknownKey]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^error: 409 NODE_STATE_INVALID: this node's EK key or certificate was never recorded/,
    );
    expect(await windowOf(unknownKey)).toEqual(before);
    expect(await otter(['node', 're-enroll', randomUUID()])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 404 NODE_NOT_FOUND: no such node\n',
    });
  });

  it('is for admins only: a release engineer or a viewer gets 403 and opens nothing', async () => {
    const id = await seedNode('active');
    const before = await windowOf(id);
    for (const role of ['release-engineer', 'viewer'] as const) {
      const run = await otter(['node', 're-enroll', id], await tokenWithRole(role));
      expect(run).toMatchObject({ code: 1, stdout: '' });
      expect(run.stderr).toMatch(/^error: 403 FORBIDDEN: /);
    }
    expect(await windowOf(id)).toEqual(before);
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
