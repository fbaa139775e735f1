import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustCaFile } from '#otter/api-client';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { DeviceAgent } from '../apps/agent/src/device/device-agent.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { SoftwareDeviceKey } from '../apps/api/src/testing/software-device-key.js';
import { createTestTls, type TestTls } from '../apps/api/src/testing/test-tls.js';
import { onFreshConnection } from '../apps/api/src/testing/fresh-connection.js';
import { runBuiltAgent, type AgentRun } from '../apps/agent/src/testing/agent-command.js';
import { builtAgentMain } from '../apps/agent/src/testing/agent-daemon.js';

// Item 2 of issue 9, by attack: the api terminates TLS itself, the built agent enrolls and works over it
// trusting a private CA, and a device access token copied off the genuine node is useless to anyone else:
// every device request needs a DPoP proof signed inside the node's TPM (RFC 9449).
//
// The agent runs from <OTTER_TEST_DIST_ROOT>/dist (default: this repository; `make build` first).

const caDir = mkdtempSync(join(tmpdir(), 'otter-tpm-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-tpm-trust-'));
const work = mkdtempSync(join(tmpdir(), 'otter-binding-'));
const stateDir = join(work, 'node');

let tls: TestTls;
let api: ApiHarness;
let tpm: SoftwareTpm;
let nodeId: string;

function otterAgent(args: string[]): Promise<AgentRun> {
  return runBuiltAgent(args, work);
}

async function reportCount(): Promise<number> {
  const rows = await api.db
    .selectFrom('device_reports')
    .select('node_id')
    .where('node_id', '=', nodeId)
    .execute();
  return rows.length;
}

beforeAll(async () => {
  builtAgentMain(); // throws, saying what to do, when the agent is not built
  tls = await createTestTls();
  // This test process (the operator's and the attacker's side) trusts the api's private CA too.
  trustCaFile(tls.caFile);
  tpm = await startSoftwareTpm({ caDir });
  for (const f of tpm.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
  api = await startApi({
    OTTER_TLS_CERT: tls.certFile,
    OTTER_TLS_KEY: tls.keyFile,
    OTTER_TPM_CA_DIR: trustDir,
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
  });
}, 60_000);
afterAll(async () => {
  await api?.close();
  await tpm?.stop();
});

describe('device tokens over TLS, bound to the TPM device key', () => {
  it('the api serves https only, and the agent trusts its private CA only when told (--ca-file)', async () => {
    expect(api.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const enroll = [
      'enroll',
      '--server',
      api.url,
      '--tpm',
      tpm.tcti,
      '--state-dir',
      stateDir,
      '--hardware',
      'board',
    ];
    const untrusted = await otterAgent(enroll);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(
      /SERVER_UNREACHABLE: .*(self-signed|unable to verify|issuer certificate)/i,
    );

    const pending = await otterAgent(['--ca-file', tls.caFile, ...enroll]);
    expect(pending.code, pending.stderr).toBe(0);
    nodeId = (JSON.parse(pending.stdout) as { nodeId: string }).nodeId;
    await api.admin('POST', `/api/v1/nodes/${nodeId}/approve`);
    const active = await otterAgent(['--ca-file', tls.caFile, ...enroll]);
    expect(active.code, active.stderr).toBe(0);
    expect(JSON.parse(active.stdout)).toMatchObject({ nodeId, state: 'active' });

    // The genuine agent works over TLS, with its token and a TPM-signed proof on every request.
    const report = await otterAgent([
      ...['--ca-file', tls.caFile, 'report', '--state-dir', stateDir],
      ...['--kind', 'health', '--ok', '--event', 'booted'],
    ]);
    expect(report.code, report.stderr).toBe(0);
    expect(await reportCount()).toBe(1);
  });

  it('refuses a copied access token used without the device key (401 with a reason); the node still works', async () => {
    // The genuine node, in this process, on the same TPM: its token and proofs are what a thief could copy
    // (a log, a proxy's dump, a memory image), never its TPM-resident key.
    const agent = await DeviceAgent.open(stateDir);
    const device = await agent.authenticatedApi();
    const reportsUrl = `${api.url}/api/v1/devices/me/reports`;
    const genuine = await device.authorize('POST', reportsUrl);
    const token = /^DPoP (.+)$/.exec(genuine.authorization!)![1]!;
    const body = JSON.stringify({ kind: 'health', ok: false, event: 'forged', at: new Date().toISOString() });
    const post = (url: string, headers: Record<string, string>): Promise<Response> =>
      fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
    const stored = await reportCount();

    // The genuine request goes through once...
    expect((await post(reportsUrl, genuine)).status).toBe(202);
    const before = await reportCount();
    expect(before).toBe(stored + 1);

    const thief = SoftwareDeviceKey.generate();
    const challengeUrl = `${api.url}/api/v1/devices/me/attestation/challenge`;
    const attacks: Array<[string, string, Record<string, string>, string]> = [
      [
        'the token as a plain bearer token',
        reportsUrl,
        { authorization: `Bearer ${token}` },
        'dpop_required',
      ],
      ['the token with no proof', reportsUrl, { authorization: `DPoP ${token}` }, 'dpop_proof_missing'],
      [
        'the token with a proof by the thief’s own key',
        reportsUrl,
        await thief.headers('POST', reportsUrl, token),
        'dpop_key_mismatch',
      ],
      ['the genuine request replayed as captured', reportsUrl, genuine, 'dpop_jti_reused'],
      ['a captured proof sent to another endpoint', challengeUrl, genuine, 'dpop_htu_mismatch'],
    ];
    // The thief sends from elsewhere: its own connections, never the genuine one (which the api, terminating
    // TLS with no proxy declared, has bound to the device key).
    for (const [what, url, headers, reason] of attacks) {
      const res = await onFreshConnection(url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body,
      });
      const answer = res.json as { code: string; details?: { reason?: string } };
      expect([what, res.status, answer.code, answer.details?.reason]).toEqual([
        what,
        401,
        'UNAUTHENTICATED',
        reason,
      ]);
    }
    // The director poll path (a plain Fastify route) holds the same line.
    const pollUrl = `${api.url}/tuf/director/${nodeId}/metadata/timestamp.json`;
    for (const [headers, reason] of [
      [{ authorization: `Bearer ${token}` }, 'dpop_required'],
      [await thief.headers('GET', pollUrl, token), 'dpop_key_mismatch'],
    ] as const) {
      const res = await onFreshConnection(pollUrl, { headers });
      expect([res.status, (res.json as { details?: { reason?: string } }).details?.reason]).toEqual([
        401,
        reason,
      ]);
    }
    // Nothing the thief sent was stored.
    expect(await reportCount()).toBe(before);

    // The genuine node goes on working, with the same token and fresh proofs.
    await device.report({ kind: 'health', ok: true, event: 'still here', at: new Date().toISOString() });
    const verdict = await agent.attest();
    expect(typeof verdict.passed).toBe('boolean');
    expect(await reportCount()).toBe(before + 1);
    expect(readFileSync(join(stateDir, 'device.json'), 'utf8')).not.toContain(token);
  });
});
