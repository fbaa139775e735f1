import 'reflect-metadata';
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, Tpm2Tools, type SoftwareTpm } from '#otter/tpm';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { DeviceAgent } from '../apps/agent/src/device/device-agent.js';
import { DeviceApi, DeviceApiError } from '../apps/agent/src/device/device-api.js';
import { expectedPcrAfterBoot, SimulatedMeasuredBoot } from '../apps/agent/src/platform/measured-boot.js';

// Enrollment, identity and attestation end to end: the real api, real swtpm TPMs driven by the agent's
// tpm2-tools code, and every refusal attempted as an attacker would.
const caDir = mkdtempSync(join(tmpdir(), 'otter-tpm-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-tpm-trust-'));
const work = mkdtempSync(join(tmpdir(), 'otter-attest-'));
const imageA = randomBytes(200_000);
const imageTampered = Buffer.from(imageA);
imageTampered[1000] = imageTampered[1000]! ^ 0xff;
const queuePrefix = `t${randomBytes(5).toString('hex')}`;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let api: ApiHarness;
let admin: string;
let tpm: SoftwareTpm;
let stranger: SoftwareTpm;
let sibling: SoftwareTpm;
let agent: DeviceAgent;
let siblingTools: Tpm2Tools;
const tpms: SoftwareTpm[] = [];

async function adminPost(path: string): Promise<Response> {
  return fetch(`${api.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
}

async function count(table: 'nodes' | 'attestation_verdicts' | 'enrollments'): Promise<number> {
  return Number(
    (
      await api.db
        .selectFrom(table)
        .select(({ fn }) => fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
}

function writeSlot(image: Buffer): string {
  const file = join(work, `slot-${randomBytes(3).toString('hex')}.img`);
  writeFileSync(file, image);
  return file;
}

async function boot(image: Buffer, clean = true): Promise<void> {
  await tpm.restart({ clean });
  await new SimulatedMeasuredBoot(agent.tpmTools, 9).measureBootedSlot(writeSlot(image));
}

beforeAll(async () => {
  tpm = await startSoftwareTpm({ caDir });
  sibling = await startSoftwareTpm({ caDir });
  stranger = await startSoftwareTpm();
  tpms.push(tpm, sibling, stranger);
  siblingTools = new Tpm2Tools({ tcti: sibling.tcti, stateDir: mkdtempSync(join(work, 'sibling-')) });
  await siblingTools.createAttestationKey();
  for (const f of tpm.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
  api = await startApi({
    OTTER_TPM_CA_DIR: trustDir,
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: queuePrefix,
  });
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  await api.publish('images/board/1.0.0', imageA, {
    hardware: 'board',
    version: '1.0.0',
    measurements: { 9: expectedPcrAfterBoot(sha(imageA)) },
  });
}, 60_000);
afterAll(async () => {
  await api?.close();
  await Promise.all(tpms.map((t) => t.stop()));
});

describe('node identity and attestation against swtpm', () => {
  it('enrolls (pending approval), gets an identity once approved, and attests the booted release', async () => {
    const stateDir = join(work, 'node-1');
    const first = await DeviceAgent.enroll({
      server: api.url,
      tcti: tpm.tcti,
      stateDir,
      hardwareId: 'board',
      runningVersion: '1.0.0',
    });
    expect(first.state).toBe('pending-approval');
    expect((await adminPost(`/api/v1/nodes/${first.nodeId}/approve`)).status).toBe(200);
    const second = await DeviceAgent.enroll({
      server: api.url,
      tcti: tpm.tcti,
      stateDir,
      hardwareId: 'board',
    });
    expect(second).toMatchObject({ nodeId: first.nodeId, state: 'active' });
    agent = await DeviceAgent.open(stateDir);

    await boot(imageA);
    const verdict = await agent.attest('1.0.0');
    expect(verdict).toMatchObject({ passed: true, releaseVersion: '1.0.0' });
    expect(verdict.pcrValues['9']).toBe(expectedPcrAfterBoot(sha(imageA)));

    const list = await fetch(`${api.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${admin}` } });
    const nodes = (
      (await list.json()) as {
        nodes: Array<{ id: string; state: string; lastVerdict: { passed: boolean; ageSeconds: number } }>;
      }
    ).nodes;
    expect(nodes.find((n) => n.id === first.nodeId)).toMatchObject({
      state: 'active',
      lastVerdict: { passed: true },
    });
  });

  it('enrolls through the RSA endorsement key as well', async () => {
    const rsaTpm = await startSoftwareTpm({ caDir });
    tpms.push(rsaTpm);
    const result = await DeviceAgent.enroll({
      server: api.url,
      tcti: rsaTpm.tcti,
      stateDir: join(work, 'node-rsa'),
      hardwareId: 'board',
      ekKind: 'rsa',
    });
    expect(result.state).toBe('pending-approval');
    expect((await adminPost(`/api/v1/nodes/${result.nodeId}/approve`)).status).toBe(200);
    const active = await DeviceAgent.enroll({
      server: api.url,
      tcti: rsaTpm.tcti,
      stateDir: join(work, 'node-rsa'),
      hardwareId: 'board',
    });
    expect(active.state).toBe('active');
  });

  it('fails a node that booted a tampered image, and passes it again once it boots the expected one', async () => {
    await boot(imageTampered);
    const bad = await agent.attest('1.0.0');
    expect(bad.passed).toBe(false);
    expect(bad.reason).toMatch(/PCR 9 differs from the release reference/);
    await boot(imageA);
    expect((await agent.attest('1.0.0')).passed).toBe(true);
  });

  it('still attests after three power losses in a row (no dictionary-attack lockout)', async () => {
    for (let i = 0; i < 3; i++) await tpm.restart({ clean: false });
    await boot(imageA, false);
    expect((await agent.attest('1.0.0')).passed).toBe(true);
  });

  it('refuses a TPM whose state was rolled back to an earlier copy', async () => {
    const saved = join(work, 'tpm-state-snapshot');
    const stateFile = join(tpm.stateDir, 'tpm2-00.permall');
    await tpm.restart({ whileOff: async () => copyFileSync(stateFile, saved) });
    for (let i = 0; i < 2; i++) await tpm.restart({ clean: false });
    await boot(imageA, false);
    expect((await agent.attest('1.0.0')).passed).toBe(true);
    const verdicts = await count('attestation_verdicts');

    await tpm.restart({ clean: false, whileOff: async () => copyFileSync(saved, stateFile) });
    await new SimulatedMeasuredBoot(agent.tpmTools, 9).measureBootedSlot(writeSlot(imageA));
    await expect(agent.attest('1.0.0')).rejects.toMatchObject({
      status: 403,
      code: 'QUOTE_COUNTER_ROLLBACK',
    });
    expect(await count('attestation_verdicts')).toBe(verdicts);

    // Booting on past the recorded counters is accepted again (the TPM moved forward, not back).
    for (let i = 0; i < 3; i++) await tpm.restart({ clean: false });
    await boot(imageA, false);
    expect((await agent.attest('1.0.0')).passed).toBe(true);
  });

  it('renews its identity by proving the TPM key again', async () => {
    const before = JSON.parse(readFileSync(join(work, 'node-1', 'device.json'), 'utf8')) as {
      certificate: string;
    };
    await agent.obtainIdentity();
    const after = JSON.parse(readFileSync(join(work, 'node-1', 'device.json'), 'utf8')) as {
      certificate: string;
      state: string;
    };
    expect(after.state).toBe('active');
    expect(after.certificate).not.toBe(before.certificate);
    expect((await agent.attest('1.0.0')).passed).toBe(true);
  });

  it('a failed integrity report fails the node until it attests clean again', async () => {
    await agent.report({ kind: 'integrity', ok: false, event: 'dm-verity', detail: 'block 1234 mismatch' });
    const res = await fetch(`${api.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${admin}` } });
    const node = (
      (await res.json()) as { nodes: Array<{ id: string; lastVerdict: { passed: boolean; reason: string } }> }
    ).nodes.find((n) => n.id === agent.nodeId)!;
    expect(node.lastVerdict).toMatchObject({ passed: false });
    expect(node.lastVerdict.reason).toMatch(/integrity failure reported: dm-verity/);
    expect((await agent.attest('1.0.0')).passed).toBe(true);
  });
});

describe('refusals: each a clear 4xx that changes nothing', () => {
  async function enrollmentBody(
    source: SoftwareTpm,
    ekFrom: SoftwareTpm = source,
  ): Promise<Record<string, string>> {
    const tools =
      source === sibling
        ? siblingTools
        : new Tpm2Tools({ tcti: source.tcti, stateDir: mkdtempSync(join(work, 'tpm-')) });
    const ekTools =
      ekFrom === source
        ? tools
        : new Tpm2Tools({ tcti: ekFrom.tcti, stateDir: mkdtempSync(join(work, 'tpm-')) });
    return {
      hardwareId: 'board',
      ekKind: 'ecc',
      ekCertificate: (await tools.readEkCertificate('ecc')).toString('base64'),
      ekPublic: (await ekTools.ekPublic('ecc')).toString('base64'),
      akPublic: (await tools.createAttestationKey()).public.toString('base64'),
    };
  }

  async function expectRefused(res: Response, status: number, code: RegExp): Promise<void> {
    const body = (await res.json()) as { code: string; message: string };
    expect(res.status, body.message).toBe(status);
    expect(body.code).toMatch(code);
  }

  const post = (path: string, body: unknown): Promise<Response> =>
    fetch(`${api.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('an EK certificate from an unknown manufacturer CA', async () => {
    const before = [await count('nodes'), await count('enrollments')];
    await expectRefused(
      await post('/api/v1/devices/enrollments', await enrollmentBody(stranger)),
      403,
      /EK_CERT_UNTRUSTED/,
    );
    expect([await count('nodes'), await count('enrollments')]).toEqual(before);
  });

  it('an EK public key that is not the certified one', async () => {
    const before = [await count('nodes'), await count('enrollments')];
    await expectRefused(
      await post('/api/v1/devices/enrollments', await enrollmentBody(sibling, tpm)),
      403,
      /EK_CERT_KEY_MISMATCH/,
    );
    expect([await count('nodes'), await count('enrollments')]).toEqual(before);
  });

  it('a wrong ActivateCredential answer', async () => {
    const challenge = (await (
      await post('/api/v1/devices/enrollments', await enrollmentBody(sibling))
    ).json()) as { enrollmentId: string; nonce: string; pcrs: number[] };
    await siblingTools.createAttestationKey();
    const quote = await siblingTools.quote(Buffer.from(challenge.nonce, 'hex'), challenge.pcrs);
    const before = await count('nodes');
    const res = await post(`/api/v1/devices/enrollments/${challenge.enrollmentId}/activation`, {
      secret: randomBytes(32).toString('base64'),
      quote: {
        attest: quote.attest.toString('base64'),
        signature: quote.signature.toString('base64'),
        pcrValues: Object.fromEntries(Object.entries(quote.pcrValues)),
      },
    });
    await expectRefused(res, 403, /ENROLLMENT_PROOF_INVALID/);
    expect(await count('nodes')).toBe(before);
  });

  describe('attestation', () => {
    let access: DeviceApi;
    beforeAll(async () => {
      access = await agent.authenticatedApi();
    });

    async function freshQuote(nonce?: string): Promise<{
      nonce: string;
      body: {
        nonce: string;
        quote: { attest: string; signature: string; pcrValues: Record<string, string> };
      };
    }> {
      const challenge = await access.challenge();
      const q = await agent.tpmTools.quote(Buffer.from(nonce ?? challenge.nonce, 'hex'), challenge.pcrs);
      return {
        nonce: challenge.nonce,
        body: {
          nonce: challenge.nonce,
          quote: {
            attest: q.attest.toString('base64'),
            signature: q.signature.toString('base64'),
            pcrValues: Object.fromEntries(Object.entries(q.pcrValues)),
          },
        },
      };
    }

    async function refusedWithoutVerdict(body: unknown, code: RegExp, status = 403): Promise<void> {
      const verdicts = await count('attestation_verdicts');
      const err = await access.attest(body as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeviceApiError);
      expect((err as DeviceApiError).status).toBe(status);
      expect((err as DeviceApiError).code).toMatch(code);
      expect(await count('attestation_verdicts')).toBe(verdicts);
    }

    it('a quote signed by a key the node did not enroll', async () => {
      const { nonce, body } = await freshQuote();
      await siblingTools.createAttestationKey();
      const foreign = await siblingTools.quote(
        Buffer.from(nonce, 'hex'),
        Object.keys(body.quote.pcrValues).map(Number),
      );
      body.quote = {
        attest: foreign.attest.toString('base64'),
        signature: foreign.signature.toString('base64'),
        pcrValues: Object.fromEntries(Object.entries(foreign.pcrValues)),
      };
      await refusedWithoutVerdict(body, /QUOTE_SIGNATURE_INVALID/);
    });

    it('a wrong nonce, a reused nonce and an expired nonce', async () => {
      const wrong = await freshQuote(randomBytes(32).toString('hex'));
      await refusedWithoutVerdict(
        { ...wrong.body, nonce: randomBytes(32).toString('hex') },
        /NONCE_INVALID/,
        400,
      );
      const once = await freshQuote();
      await access.attest(once.body);
      await refusedWithoutVerdict(once.body, /NONCE_INVALID/, 400);
      // Its time runs out in Redis, as it would after OTTER_ATTESTATION_NONCE_TTL (the nonce store's spec
      // waits that out for real); the e2e keeps the 2-minute default so that a slow quote never races it.
      const late = await freshQuote();
      const redis = new Redis(process.env.OTTER_TEST_REDIS_URL!);
      try {
        // The node's unused nonces: one sorted set, each scored by its expiry in microseconds.
        const key = `${queuePrefix}:attest-nonces:${agent.nodeId!}`;
        expect(await redis.zscore(key, late.nonce)).not.toBeNull();
        await redis.zadd(key, 'XX', (Date.now() - 1000) * 1000, late.nonce);
      } finally {
        await redis.quit();
      }
      await refusedWithoutVerdict(late.body, /NONCE_INVALID/, 400);
    });

    it('PCR values altered after quoting, and values that do not match the signed selection', async () => {
      const altered = await freshQuote();
      altered.body.quote.pcrValues['0'] = 'ab'.repeat(32);
      await refusedWithoutVerdict(altered.body, /QUOTE_PCR_DIGEST_MISMATCH/);
      const fewer = await freshQuote();
      delete fewer.body.quote.pcrValues['9'];
      await refusedWithoutVerdict(fewer.body, /QUOTE_SELECTION_MISMATCH/);
    });
  });

  describe('device tokens', () => {
    const tokenFor = (assertion: string): Promise<Response> => post('/api/v1/devices/token', { assertion });
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');

    it('refuses alg none, a wrong key, an expired assertion and a wrong audience', async () => {
      const nodeId = agent.nodeId!;
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: nodeId,
        sub: nodeId,
        aud: 'otter:device-auth',
        iat: now,
        exp: now + 60,
        jti: randomUUID(),
      };
      await expectRefused(await tokenFor(`${b64({ alg: 'none' })}.${b64(claims)}.`), 401, /UNAUTHENTICATED/);
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
      await expectRefused(await tokenFor(forged), 401, /UNAUTHENTICATED/);
      const tools = agent.tpmTools;
      const expired = await tools.signJwt(
        { typ: 'JWT' },
        { ...claims, iat: now - 600, exp: now - 400, jti: randomUUID() },
      );
      await expectRefused(await tokenFor(expired), 401, /UNAUTHENTICATED/);
      const wrongAud = await tools.signJwt(
        { typ: 'JWT' },
        { ...claims, aud: 'otter:device-api', jti: randomUUID() },
      );
      await expectRefused(await tokenFor(wrongAud), 401, /UNAUTHENTICATED/);
      const good = await tools.signJwt({ typ: 'JWT' }, { ...claims, jti: randomUUID() });
      expect((await tokenFor(good)).status).toBe(200);
      await expectRefused(await tokenFor(good), 401, /UNAUTHENTICATED/);
    });

    it("a node cannot read another node's record", async () => {
      // As the agent makes every device request: its bound token and a TPM-signed DPoP proof.
      const access = await agent.authenticatedApi();
      const get = async (url: string): Promise<Response> =>
        fetch(url, { headers: await access.authorize('GET', url) });
      expect((await get(`${api.url}/api/v1/devices/${agent.nodeId}`)).status).toBe(200);
      expect((await get(`${api.url}/api/v1/devices/${randomUUID()}`)).status).toBe(403);
    });

    it('a revoked node: its access token and its assertions stop working at once', async () => {
      const access = await agent.authenticatedApi();
      expect((await access.challenge()).nonce).toMatch(/^[0-9a-f]{64}$/);
      expect((await adminPost(`/api/v1/nodes/${agent.nodeId}/revoke`)).status).toBe(200);
      const after = await access.challenge().catch((e: unknown) => e);
      expect((after as DeviceApiError).status).toBe(401);
      await expect(agent.authenticatedApi()).rejects.toMatchObject({ status: 401 });
    });
  });
});

void mkdirSync;
