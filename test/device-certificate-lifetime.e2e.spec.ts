import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_CERTIFICATE_EXPIRED } from '#otter/contracts';
import { DeviceCertificateAuthority } from '#otter/identity';
import { startSoftwareTpm, Tpm2Tools, type SoftwareTpm } from '#otter/tpm';
import { DeviceAgent } from '../apps/agent/src/device/device-agent.js';
import {
  describeCertificate,
  type DeviceCertificateInfo,
} from '../apps/agent/src/device/device-certificate.js';
import { loadDeviceState } from '../apps/agent/src/device/device-state.js';
import { expectedPcrAfterBoot } from '../apps/agent/src/platform/measured-boot.js';
import { AgentDaemon, builtAgentMain } from '../apps/agent/src/testing/agent-daemon.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { recordRequests, type LoggedRequest } from '../apps/api/src/testing/request-log.js';

// Device certificates with lifetimes of seconds: a real api and real `otter-agent run` daemons (the built
// agent, each node on its own swtpm). The agent renews ahead of expiry with no gap in service, recovers on its
// own after being off past its certificate's expiry, a revoked or rejected node cannot get a certificate back,
// and the device CA (lifetime 3 × the certificates') rotates under a running node without it noticing.
// 8 s: an agent renews between 4.9 s and 5.7 s, so a poll slowed by a busy machine still has over 2 s.
const CERT_TTL = 8;
const CA_TTL = 3 * CERT_TTL;

const caDir = mkdtempSync(join(tmpdir(), 'otter-tpm-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-tpm-trust-'));
const work = mkdtempSync(join(tmpdir(), 'otter-cert-lifetime-'));
const image = randomBytes(50_000);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const imageRoot = join(work, 'image-root.json');
const directorRoot = join(work, 'director-root.json');

let api: ApiHarness;
let requests: LoggedRequest[];
/** Revoked at the start, so its certificate lapses while the other tests run. */
let revoked: Node;
const tpms: SoftwareTpm[] = [];
const daemons: AgentDaemon[] = [];

interface Node {
  id: string;
  dir: string;
  tpm: SoftwareTpm;
}

async function activeNode(name: string): Promise<Node> {
  const tpm = await startSoftwareTpm({ caDir });
  tpms.push(tpm);
  const dir = join(work, name);
  const enroll = (): ReturnType<typeof DeviceAgent.enroll> =>
    DeviceAgent.enroll({
      server: api.url,
      tcti: tpm.tcti,
      stateDir: dir,
      hardwareId: 'board',
      runningVersion: '1.0.0',
    });
  const { nodeId } = await enroll();
  await api.admin('POST', `/api/v1/nodes/${nodeId}/approve`);
  expect((await enroll()).state).toBe('active');
  return { id: nodeId, dir, tpm };
}

function startDaemon(node: Node): AgentDaemon {
  const daemon = AgentDaemon.start({
    stateDir: node.dir,
    imageRootPath: imageRoot,
    directorRootPath: directorRoot,
    slotImage: image,
  });
  daemons.push(daemon);
  return daemon;
}

/** The certificate in the node's device.json right now. */
async function heldCertificate(node: Node): Promise<DeviceCertificateInfo & { pem: string }> {
  const pem = (await loadDeviceState(node.dir))!.certificate!;
  return { ...describeCertificate(pem), pem };
}

async function storedNode(
  id: string,
): Promise<{ state: string; serial: string | null; notAfter: string | null }> {
  const row = await api.db
    .selectFrom('nodes')
    .select(['state', 'device_cert_serial', 'device_cert_not_after'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return { state: row.state, serial: row.device_cert_serial, notAfter: row.device_cert_not_after };
}

/** The node's own TPM, used directly while its daemon is stopped (a raw TPM runs one client at a time). */
function tpmOf(node: Node): Tpm2Tools {
  return new Tpm2Tools({ tcti: node.tpm.tcti, stateDir: join(node.dir, 'tpm') });
}

function assertionClaims(nodeId: string): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: nodeId, sub: nodeId, aud: 'otter:device-auth', iat: now, exp: now + 60, jti: randomUUID() };
}

/** A complete, genuine identity request: the AK's TPM2_Certify of the device key and a fresh assertion. */
async function identityProof(node: Node): Promise<Record<string, string>> {
  const tools = tpmOf(node);
  const device = await tools.createDeviceKey();
  const certify = await tools.certifyDeviceKey();
  return {
    devicePublic: device.public.toString('base64'),
    certifyAttest: certify.attest.toString('base64'),
    certifySignature: certify.signature.toString('base64'),
    assertion: await tools.signJwt({ typ: 'JWT' }, assertionClaims(node.id)),
  };
}

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${api.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** What the api answers the node's own token exchange now (signed in its TPM). */
async function tokenAnswer(node: Node): Promise<{ status: number; body: Record<string, unknown> }> {
  return post('/api/v1/devices/token', {
    assertion: await tpmOf(node).signJwt({ typ: 'JWT' }, assertionClaims(node.id)),
  });
}

/** Waits, on the api's own answer, until the node's certificate has lapsed. */
async function waitUntilLapsed(node: Node): Promise<void> {
  await expect
    .poll(async () => (await tokenAnswer(node)).body.details, {
      timeout: (CERT_TTL + 10) * 1000,
      interval: 250,
    })
    .toEqual({ reason: DEVICE_CERTIFICATE_EXPIRED });
}

const tokenExchanges = (since: number): LoggedRequest[] =>
  requests.filter((r) => r.method === 'POST' && r.path === '/api/v1/devices/token' && r.at >= since);
const eventsOf = (daemon: AgentDaemon, name: string): Array<Record<string, unknown>> =>
  daemon.events().filter((e) => e.event === name);

beforeAll(async () => {
  builtAgentMain();
  const first = await startSoftwareTpm({ caDir });
  tpms.push(first);
  for (const f of first.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
  api = await startApi({
    OTTER_TPM_CA_DIR: trustDir,
    OTTER_DEVICE_CERT_TTL: String(CERT_TTL),
    OTTER_DEVICE_CA_TTL: String(CA_TTL),
  });
  requests = recordRequests(api.app.getHttpServer());
  await api.publish('images/board/1.0.0', image, {
    hardware: 'board',
    version: '1.0.0',
    measurements: { 9: expectedPcrAfterBoot(sha(image)) },
  });
  writeFileSync(imageRoot, await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text());
  writeFileSync(directorRoot, JSON.stringify(await api.admin('GET', '/api/v1/tuf/director/root')));
  revoked = await activeNode('node-revoked');
  await api.admin('POST', `/api/v1/nodes/${revoked.id}/revoke`);
}, 60_000);

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  await api?.close();
  await Promise.all(tpms.map((t) => t.stop()));
});

describe('device certificates with lifetimes of seconds, on running agents', () => {
  let node: Node;
  let daemon: AgentDaemon;

  it('the daemon renews ahead of expiry: a new serial at about two thirds, and no request refused meanwhile', async () => {
    node = await activeNode('node-1');
    const first = await heldCertificate(node);
    expect(first.notAfter.getTime() - first.notBefore.getTime()).toBe(CERT_TTL * 1000);
    const since = Date.now();
    daemon = startDaemon(node);

    // Two renewals: the second one proves the node kept polling past its first certificate's expiry.
    const seen = new Map([[first.serialNumber, first]]);
    await expect
      .poll(
        async () => {
          const cert = await heldCertificate(node);
          seen.set(cert.serialNumber, cert);
          return seen.size;
        },
        { timeout: 3 * CERT_TTL * 1000, interval: 100 },
      )
      .toBeGreaterThanOrEqual(3)
      .catch((e: unknown) => {
        throw new Error(`${String(e)}\n${daemon.output}`);
      });

    const second = [...seen.values()][1]!;
    const renewed = eventsOf(daemon, 'certificate-renewed');
    expect(renewed[0]).toMatchObject({
      reason: 'due',
      previousSerial: first.serialNumber,
      serial: second.serialNumber,
    });
    expect(renewed.every((e) => e.reason === 'due')).toBe(true);
    // Renewed at about two thirds of the lifetime (61.7 % to 71.7 %; X.509 times are whole seconds), before
    // the first certificate expired.
    expect(second.notBefore.getTime()).toBeGreaterThanOrEqual(first.notBefore.getTime() + 4000);
    expect(second.notBefore.getTime()).toBeLessThan(first.notAfter.getTime());
    // Otter recorded the certificate the node holds.
    const held = await heldCertificate(node);
    expect((await storedNode(node.id)).serial).toBe(held.serialNumber);

    // No gap in service: every token exchange and identity request succeeded, including after the first
    // certificate's expiry, and the daemon never logged a failure.
    const exchanges = tokenExchanges(since);
    expect(exchanges.filter((r) => r.status !== 200)).toEqual([]);
    expect(exchanges.filter((r) => r.at > first.notAfter.getTime()).length).toBeGreaterThan(0);
    const identities = requests.filter(
      (r) => r.path === `/api/v1/devices/${node.id}/identity` && r.at >= since,
    );
    expect(identities.map((r) => r.status)).toEqual(identities.map(() => 201));
    expect(daemon.events().filter((e) => /error|failed|expired/.test(String(e.event)))).toEqual([]);
  }, 60_000);

  it('a renewal Otter cannot answer is logged and retried; the node keeps polling on its valid certificate', async () => {
    // Otter cannot issue for a while: a damaged device CA key file appears in its data dir (every issuance
    // reads the key directory first, so it fails with a 500 until the file is gone).
    const damaged = join(api.config.dataDir, 'keys', 'device-ca.999.sealed.json');
    const since = Date.now();
    const current = await heldCertificate(node);
    const failuresBefore = eventsOf(daemon, 'certificate-renewal-failed').length;
    writeFileSync(damaged, 'not a sealed key file');
    try {
      await expect
        .poll(() => eventsOf(daemon, 'certificate-renewal-failed').length, { timeout: 2 * CERT_TTL * 1000 })
        .toBeGreaterThan(failuresBefore);
    } finally {
      // Repaired as soon as one renewal failed, so that the retry (one second later) can succeed: waiting for
      // anything else first left the retry racing the certificate's expiry on a loaded machine.
      unlinkSync(damaged);
    }
    const failure = eventsOf(daemon, 'certificate-renewal-failed')[failuresBefore]!;
    expect(failure).toMatchObject({ failures: 1, retryIn: 1, code: 'INTERNAL', error: 'internal error' });
    // Polling goes on with the certificate the node holds: the poll that failed to renew goes on to exchange
    // its token.
    const failedAt = Date.parse(failure.at as string);
    await expect
      .poll(() => tokenExchanges(failedAt).filter((r) => r.status === 200).length, {
        timeout: CERT_TTL * 1000,
      })
      .toBeGreaterThan(0);
    // The retry succeeds before the certificate expires.
    await expect
      .poll(async () => (await heldCertificate(node)).serialNumber, {
        timeout: CERT_TTL * 1000,
        interval: 100,
      })
      .not.toBe(current.serialNumber);
    expect(Date.parse(eventsOf(daemon, 'certificate-renewed').at(-1)!.at as string)).toBeLessThan(
      current.notAfter.getTime(),
    );
    expect(daemon.events().filter((e) => /^error$|expired/.test(String(e.event)))).toEqual([]);
    expect(tokenExchanges(since).filter((r) => r.status !== 200)).toEqual([]);
  }, 60_000);

  it('an agent stopped past its certificate expiry recovers by itself when it starts again', async () => {
    await daemon.stop();
    const lapsed = await heldCertificate(node);
    await waitUntilLapsed(node);
    expect(await storedNode(node.id)).toMatchObject({ state: 'active', serial: lapsed.serialNumber });

    const restartedAt = Date.now();
    daemon = startDaemon(node);
    await expect
      .poll(async () => (await heldCertificate(node)).serialNumber, { timeout: 15_000, interval: 100 })
      .not.toBe(lapsed.serialNumber);
    const recovered = await heldCertificate(node);
    expect(recovered.notAfter.getTime()).toBeGreaterThan(restartedAt);
    expect(eventsOf(daemon, 'certificate-expired')[0]).toMatchObject({ serial: lapsed.serialNumber });
    expect(eventsOf(daemon, 'certificate-renewed')[0]).toMatchObject({
      reason: 'expired',
      previousSerial: lapsed.serialNumber,
      serial: recovered.serialNumber,
    });
    await expect
      .poll(() => tokenExchanges(restartedAt).filter((r) => r.status === 200).length, { timeout: 10_000 })
      .toBeGreaterThan(0);
    expect(await storedNode(node.id)).toMatchObject({ state: 'active' });
    // It renewed before its first poll: Otter never had to refuse it.
    expect(tokenExchanges(restartedAt).filter((r) => r.status !== 200)).toEqual([]);
    expect(daemon.events().filter((e) => e.event === 'error')).toEqual([]);
  }, 60_000);

  it('with a lapsed certificate, only the AK proof renews it: each forgery is refused and changes nothing', async () => {
    await daemon.stop();
    const stranger = await startSoftwareTpm({ caDir });
    tpms.push(stranger);
    await waitUntilLapsed(node);
    const before = await storedNode(node.id);
    const genuine = await identityProof(node);

    // A device key certified by another TPM's AK (an attacker's own TPM), with its own assertion.
    const strangerTools = new Tpm2Tools({
      tcti: stranger.tcti,
      stateDir: mkdtempSync(join(work, 'stranger-')),
    });
    await strangerTools.createAttestationKey();
    const strangerDevice = await strangerTools.createDeviceKey();
    const strangerCertify = await strangerTools.certifyDeviceKey();
    const foreign = await post(`/api/v1/devices/${node.id}/identity`, {
      devicePublic: strangerDevice.public.toString('base64'),
      certifyAttest: strangerCertify.attest.toString('base64'),
      certifySignature: strangerCertify.signature.toString('base64'),
      assertion: await strangerTools.signJwt({ typ: 'JWT' }, assertionClaims(node.id)),
    });
    expect(foreign).toMatchObject({ status: 403, body: { code: 'CERTIFY_SIGNATURE_INVALID' } });

    // The node's genuine certify, but the assertion signed by some other key: no proof the key is in use.
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const forged = await post(`/api/v1/devices/${node.id}/identity`, {
      ...genuine,
      assertion: await new SignJWT(assertionClaims(node.id))
        .setProtectedHeader({ alg: 'ES256' })
        .sign(otherKey),
    });
    expect(forged).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    // The genuine certify alone, with no assertion at all.
    const bare = await post(`/api/v1/devices/${node.id}/identity`, { ...genuine, assertion: undefined });
    expect(bare.status).toBe(400);
    expect(await storedNode(node.id)).toEqual(before);
  }, 60_000);

  it('a lapsed certificate Otter refuses at the token exchange is renewed on the spot (otter-agent attest)', async () => {
    // Still lapsed: the forgeries of the previous test changed nothing.
    const lapsed = await heldCertificate(node);
    await waitUntilLapsed(node);
    const since = Date.now();
    const attest = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) =>
      execFile(
        process.execPath,
        [builtAgentMain(), 'attest', '--state-dir', node.dir],
        { timeout: 25_000 },
        (error, stdout, stderr) => {
          if (error && typeof error.code !== 'number') return reject(error);
          resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
        },
      ),
    );
    expect(attest.stderr).toBe('');
    expect(JSON.parse(attest.stdout)).toMatchObject({ nodeId: node.id, passed: true });
    // Refused once for the lapsed certificate, then the AK proof, then accepted.
    expect(tokenExchanges(since).map((r) => r.status)).toEqual([401, 200]);
    expect(
      requests.filter((r) => r.path === `/api/v1/devices/${node.id}/identity` && r.at >= since),
    ).toMatchObject([{ status: 201 }]);
    const renewed = await heldCertificate(node);
    expect(renewed.serialNumber).not.toBe(lapsed.serialNumber);
    expect((await storedNode(node.id)).serial).toBe(renewed.serialNumber);
  }, 60_000);

  it('a genuine AK proof works once; replayed, it is refused and changes nothing', async () => {
    const genuine = await identityProof(node);
    const issued = await post(`/api/v1/devices/${node.id}/identity`, genuine);
    expect(issued.status).toBe(201);
    const stored = await storedNode(node.id);
    const replayed = await post(`/api/v1/devices/${node.id}/identity`, genuine);
    expect(replayed).toMatchObject({ status: 401, body: { details: { reason: 'jti_reused' } } });
    expect(await storedNode(node.id)).toEqual(stored);
  });

  it('a revoked node whose certificate lapsed cannot get one back; neither can a rejected node', async () => {
    const held = await heldCertificate(revoked);
    await expect
      .poll(() => Date.now() > held.notAfter.getTime() + 1000, {
        timeout: (CERT_TTL + 5) * 1000,
        interval: 200,
      })
      .toBe(true);
    const before = await storedNode(revoked.id);
    expect(before).toMatchObject({ state: 'revoked', serial: held.serialNumber });

    // The genuine AK proof from the node's own TPM.
    const attempt = await post(`/api/v1/devices/${revoked.id}/identity`, await identityProof(revoked));
    expect(attempt).toMatchObject({
      status: 403,
      body: { code: 'NODE_NOT_ADMITTED', details: { state: 'revoked' } },
    });
    expect(await storedNode(revoked.id)).toEqual(before);

    // Its daemon tries again and again, says why, stays up, and gets nothing.
    const revokedDaemon = startDaemon(revoked);
    await expect
      .poll(() => revokedDaemon.events().filter((e) => e.event === 'error').length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);
    expect(revokedDaemon.child.exitCode).toBeNull();
    expect(eventsOf(revokedDaemon, 'certificate-expired').length).toBeGreaterThanOrEqual(2);
    expect(eventsOf(revokedDaemon, 'error')[0]!.error).toMatch(/revoked/);
    expect(eventsOf(revokedDaemon, 'certificate-renewed')).toEqual([]);
    await revokedDaemon.stop();
    expect((await heldCertificate(revoked)).serialNumber).toBe(held.serialNumber);
    expect(await storedNode(revoked.id)).toEqual(before);

    // A rejected node never had a certificate, and the AK proof does not give it one.
    const tpm = await startSoftwareTpm({ caDir });
    tpms.push(tpm);
    const rejected: Node = { id: '', dir: join(work, 'node-rejected'), tpm };
    rejected.id = (
      await DeviceAgent.enroll({
        server: api.url,
        tcti: tpm.tcti,
        stateDir: rejected.dir,
        hardwareId: 'board',
      })
    ).nodeId;
    await api.admin('POST', `/api/v1/nodes/${rejected.id}/reject`);
    const tools = tpmOf(rejected);
    const device = await tools.createDeviceKey();
    const certify = await tools.certifyDeviceKey();
    const refused = await post(`/api/v1/devices/${rejected.id}/identity`, {
      devicePublic: device.public.toString('base64'),
      certifyAttest: certify.attest.toString('base64'),
      certifySignature: certify.signature.toString('base64'),
      assertion: await tools.signJwt({ typ: 'JWT' }, assertionClaims(rejected.id)),
    });
    expect(refused).toMatchObject({
      status: 403,
      body: { code: 'NODE_NOT_ADMITTED', details: { state: 'rejected' } },
    });
    expect(await storedNode(rejected.id)).toEqual({ state: 'rejected', serial: null, notAfter: null });
  }, 60_000);

  it('the device CA rotates under a running node: its certificates move to the successor and it never stops', async () => {
    const ca = api.app.get(DeviceCertificateAuthority);
    const bundle = (): X509Certificate[] =>
      readFileSync(join(api.config.dataDir, 'keys', 'device-ca.pem'), 'utf8')
        .split(/(?<=-----END CERTIFICATE-----\n)/)
        .filter((pem) => pem.trim())
        .map((pem) => new X509Certificate(pem));
    // The node starts with the certificate the previous tests left it (perhaps lapsed by now) and renews it.
    const lapsed = await heldCertificate(node);
    const since = Date.now();
    daemon = startDaemon(node);
    await expect
      .poll(async () => (await heldCertificate(node)).serialNumber, { timeout: 15_000, interval: 100 })
      .not.toBe(lapsed.serialNumber);

    // Every certificate the node holds from then on, and the CA that signed it.
    const held = new Map<string, { pem: string; issuer: X509Certificate }>();
    let firstIssuer: X509Certificate | undefined;
    const watch = async (): Promise<boolean> => {
      const cert = await heldCertificate(node);
      if (!held.has(cert.serialNumber)) {
        const issuer = bundle().find((c) => new X509Certificate(cert.pem).checkIssued(c));
        expect(issuer, `the trust bundle holds the CA of ${cert.serialNumber}`).toBeDefined();
        // Accepted by Otter's verifier whichever generation signed it, and never outliving that CA.
        await expect(ca.verify(cert.pem)).resolves.toMatchObject({ nodeId: node.id });
        expect(cert.notAfter.getTime()).toBeLessThanOrEqual(issuer!.validToDate.getTime());
        held.set(cert.serialNumber, { pem: cert.pem, issuer: issuer! });
        firstIssuer ??= issuer;
      }
      // Done once the CA of the first certificate has expired and left the bundle, and the node holds a
      // certificate of a CA created after it: it went through a hand-over.
      const current = held.get(cert.serialNumber)!.issuer;
      return (
        Date.now() > firstIssuer!.validToDate.getTime() &&
        !bundle().some((c) => c.fingerprint256 === firstIssuer!.fingerprint256) &&
        current.validFromDate.getTime() > firstIssuer!.validFromDate.getTime()
      );
    };
    await expect
      .poll(watch, { timeout: (CA_TTL + 2 * CERT_TTL) * 1000, interval: 200 })
      .toBe(true)
      .catch((e: unknown) => {
        throw new Error(`${String(e)}\n${daemon.output}`);
      });
    expect(new Set([...held.values()].map((h) => h.issuer.fingerprint256)).size).toBeGreaterThanOrEqual(2);
    // Two generations overlap at most, and only their keys are left in the data dir (retired ones are deleted).
    expect(bundle().length).toBeLessThanOrEqual(2);
    expect(
      readdirSync(join(api.config.dataDir, 'keys')).filter((f) => /^device-ca.*\.sealed\.json$/.test(f)),
    ).toHaveLength(bundle().length);
    // The node never noticed (a lapsed certificate it started with would be the one expiry it saw).
    expect(tokenExchanges(since).filter((r) => r.status !== 200)).toEqual([]);
    expect(daemon.events().filter((e) => /error|failed/.test(String(e.event)))).toEqual([]);
    expect(eventsOf(daemon, 'certificate-expired').length).toBeLessThanOrEqual(1);
  }, 90_000);
});
