import { randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { DeviceAgent } from '../apps/agent/src/device/device-agent.js';
import { DeviceApiError } from '../apps/agent/src/device/device-api.js';
import { freePort, ProcessGroup, waitForHttp, type ManagedProcess } from '../scripts/lib/processes.mjs';

// The built api as its own process (from <OTTER_TEST_DIST_ROOT>/dist, which `make test` builds first), with
// real signals: the trusted TPM manufacturer CAs are read at boot and again on SIGHUP, a bad file on reload
// keeps the set in use, and SIGHUP never stops the process. Then item 9: an access token the running api
// issues lives exactly OTTER_DEVICE_TOKEN_TTL.

const distRoot = process.env.OTTER_TEST_DIST_ROOT ?? fileURLToPath(new URL('..', import.meta.url));
const apiMain = join(distRoot, 'dist/apps/api/src/main.js');
const TOKEN_TTL = 1234;

const group = new ProcessGroup({ graceMs: 5_000 });
const caDir = mkdtempSync(join(tmpdir(), 'otter-sighup-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-sighup-trust-'));
const dataDir = mkdtempSync(join(tmpdir(), 'otter-sighup-data-'));
const logLines: string[] = [];
const tpms: SoftwareTpm[] = [];
let api: ManagedProcess;
let url: string;

/** The api's structured log lines with this message, parsed. */
const logged = (msg: string): Array<Record<string, unknown>> =>
  logLines
    .map((line) => line.slice(line.indexOf('{')))
    .filter((json) => json.startsWith('{'))
    .map((json) => JSON.parse(json) as Record<string, unknown>)
    .filter((entry) => entry.msg === msg);

async function hangUp(expectedMessage: string): Promise<Record<string, unknown>> {
  const before = logged(expectedMessage).length;
  process.kill(api.child.pid!, 'SIGHUP');
  await vi.waitFor(() => expect(logged(expectedMessage).length).toBeGreaterThan(before), { timeout: 10_000 });
  return logged(expectedMessage).at(-1)!;
}

async function enroll(tpm: SoftwareTpm): Promise<{ nodeId: string; state: string; stateDir: string }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'otter-sighup-node-'));
  const result = await DeviceAgent.enroll({ server: url, tcti: tpm.tcti, stateDir, hardwareId: 'rpi4' });
  return { ...result, stateDir };
}

beforeAll(async () => {
  tpms.push(await startSoftwareTpm({ caDir }), await startSoftwareTpm({ caDir }));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  const output = new PassThrough();
  output.on('data', (d: Buffer) => logLines.push(...d.toString().split('\n').filter(Boolean)));
  api = group.start('api', process.execPath, [apiMain], {
    env: {
      PATH: process.env.PATH,
      OTTER_ENV: 'test',
      OTTER_DATA_DIR: dataDir,
      OTTER_HOST: '127.0.0.1',
      OTTER_PORT: String(port),
      OTTER_LOG_LEVEL: 'info',
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      OTTER_TPM_CA_DIR: trustDir,
      OTTER_DEVICE_TOKEN_TTL: String(TOKEN_TTL),
    },
    output,
  });
  await waitForHttp(`${url}/health`, { timeoutMs: 30_000, process: api });
}, 60_000);

afterAll(async () => {
  await group.stop();
  await Promise.all(tpms.map((t) => t.stop()));
});

describe('trusted TPM manufacturer CAs on a running api', () => {
  it('reads them at boot, again on SIGHUP, and keeps the set in use when a file on reload is bad', async () => {
    expect(logged('TPM manufacturer CAs loaded').at(-1)).toMatchObject({ certificates: 0 });
    // Not trusted yet: refused, and nothing stored.
    const refused = await enroll(tpms[0]!).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DeviceApiError);
    expect((refused as DeviceApiError).code).toBe('EK_CERT_UNTRUSTED');

    // An operator adds the manufacturer's CAs and sends SIGHUP: the next enrollment is trusted.
    for (const f of tpms[0]!.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
    expect(await hangUp('TPM manufacturer CAs loaded')).toMatchObject({ certificates: 2 });
    expect((await enroll(tpms[0]!)).state).toBe('pending-approval');

    // A broken file and SIGHUP: an error naming it, the old set still in use, the process still up.
    writeFileSync(
      join(trustDir, 'broken.pem'),
      '-----BEGIN CERTIFICATE-----\nnot base64 DER\n-----END CERTIFICATE-----\n',
    );
    const error = await hangUp('TPM manufacturer CAs not reloaded: the previous set stays in use');
    expect(error).toMatchObject({ level: 50, kept: 2 });
    expect(String(error.reason)).toMatch(/broken\.pem/);
    expect(api.running).toBe(true);
    expect((await enroll(tpms[1]!)).state).toBe('pending-approval');
    expect((await fetch(`${url}/health`)).status).toBe(200);
  }, 60_000);
});

describe('device token lifetime on a running api', () => {
  it(`issues access tokens that live OTTER_DEVICE_TOKEN_TTL (${TOKEN_TTL} s), not the 600 s default`, async () => {
    // Enrolls through the CAs the test above made trusted.
    const admin = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const tpm = await startSoftwareTpm({ caDir });
    tpms.push(tpm);
    const node = await enroll(tpm);
    const approved = await fetch(`${url}/api/v1/nodes/${node.nodeId}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(approved.status).toBe(200);
    const agent = await DeviceAgent.open(node.stateDir);
    await DeviceAgent.enroll({ server: url, tcti: tpm.tcti, stateDir: node.stateDir, hardwareId: 'rpi4' });

    const now = Math.floor(Date.now() / 1000);
    const assertion = await agent.tpmTools.signJwt(
      { alg: 'ES256', typ: 'JWT' },
      {
        iss: node.nodeId,
        sub: node.nodeId,
        aud: 'otter:device-auth',
        iat: now,
        exp: now + 60,
        jti: randomUUID(),
      },
    );
    const before = Date.now();
    const res = await fetch(`${url}/api/v1/devices/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ assertion }),
    });
    expect(res.status).toBe(200);
    const { accessToken, expiresAt } = (await res.json()) as { accessToken: string; expiresAt: string };
    const claims = decodeJwt(accessToken);
    expect(claims.exp! - claims.iat!).toBe(TOKEN_TTL);
    expect(Date.parse(expiresAt) - before).toBeGreaterThan((TOKEN_TTL - 5) * 1000);
    expect(Date.parse(expiresAt) - before).toBeLessThanOrEqual((TOKEN_TTL + 1) * 1000);
  }, 60_000);
});
