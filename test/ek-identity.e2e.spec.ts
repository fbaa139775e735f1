import 'reflect-metadata';
import { createHash, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  ActivationResult,
  CreatedTokenDto,
  EnrollmentChallenge,
  ReenrollmentDto,
} from '#otter/contracts';
import { startSoftwareTpm, Tpm2Tools, type EkKind, type SoftwareTpm } from '#otter/tpm';
import { ekIssuerSerialSha256, ekPolicyDigests, parseTpm2bPublic, type TpmPublic } from '#otter/tpm-wire';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { DeviceAgent } from '../apps/agent/src/device/device-agent.js';
import { DeviceApiError } from '../apps/agent/src/device/device-api.js';
import { saveDeviceState } from '../apps/agent/src/device/device-state.js';
import { expectedPcrAfterBoot, SimulatedMeasuredBoot } from '../apps/agent/src/platform/measured-boot.js';
import { TestEkCa } from '../libs/attestation/src/testing.js';
import { encodeTpm2bPublic } from '../libs/tpm-wire/src/testing.js';

// One TPM, one node, for ever (issue 9, item 1), attempted as an attacker would against the real api with
// real swtpm TPMs: a revoked TPM re-spelling its EK public area or bringing a certificate from another CA,
// another TPM under a reused serial, a race of two enrollments of one TPM, and the admin-only re-enrollment
// of a re-imaged board. Every refusal leaves nodes and enrollments exactly as they were.
const caDir = mkdtempSync(join(tmpdir(), 'otter-tpm-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-tpm-trust-'));
const work = mkdtempSync(join(tmpdir(), 'otter-ek-identity-'));
const image = randomBytes(50_000);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let api: ApiHarness;
let admin: string;
let otherCa: TestEkCa;
const tpms: SoftwareTpm[] = [];

async function tpmWithTools(): Promise<{ tpm: SoftwareTpm; tools: Tpm2Tools }> {
  const tpm = await startSoftwareTpm({ caDir });
  tpms.push(tpm);
  return { tpm, tools: new Tpm2Tools({ tcti: tpm.tcti, stateDir: mkdtempSync(join(work, 'tools-')) }) };
}

function request(method: string, path: string, body?: unknown, token = admin): Promise<Response> {
  return fetch(`${api.url}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function expectRefused(res: Response, status: number, code: RegExp): Promise<string> {
  const body = (await res.json()) as { code: string; message: string };
  expect(res.status, body.message).toBe(status);
  expect(body.code).toMatch(code);
  return body.message;
}

/** Everything enrollment may write: a refusal must leave all of it as it was. */
async function stored(): Promise<unknown> {
  return {
    nodes: await api.db.selectFrom('nodes').selectAll().orderBy('id').execute(),
    enrollments: await api.db.selectFrom('enrollments').selectAll().orderBy('id').execute(),
  };
}

/** An enrollment request from this TPM, with its EK public area or certificate replaced as an attacker would. */
async function enrollmentBody(
  tools: Tpm2Tools,
  kind: EkKind,
  change: { ekPublic?: (ek: TpmPublic) => void; certificate?: Buffer } = {},
): Promise<Record<string, string>> {
  let ekPublic = await tools.ekPublic(kind);
  if (change.ekPublic) {
    const key = structuredClone(parseTpm2bPublic(ekPublic));
    change.ekPublic(key);
    ekPublic = encodeTpm2bPublic(key);
  }
  return {
    hardwareId: 'board',
    ekKind: kind,
    ekCertificate: (change.certificate ?? (await tools.readEkCertificate(kind))).toString('base64'),
    ekPublic: ekPublic.toString('base64'),
    akPublic: (await tools.createAttestationKey()).public.toString('base64'),
  };
}

/** What the agent does after a challenge: ActivateCredential in the TPM, then the quote of the pinned PCRs. */
async function activationBody(
  tools: Tpm2Tools,
  kind: EkKind,
  challenge: EnrollmentChallenge,
): Promise<unknown> {
  const secret = await tools.activateCredential(Buffer.from(challenge.credentialBlob, 'base64'), kind);
  const quote = await tools.quote(Buffer.from(challenge.nonce, 'hex'), challenge.pcrs);
  return {
    secret: secret.toString('base64'),
    quote: {
      attest: quote.attest.toString('base64'),
      signature: quote.signature.toString('base64'),
      pcrValues: Object.fromEntries(Object.entries(quote.pcrValues)),
    },
  };
}

const activation = (challenge: EnrollmentChallenge, body: unknown): Promise<Response> =>
  request('POST', `/api/v1/devices/enrollments/${challenge.enrollmentId}/activation`, body, '');

async function activate(tools: Tpm2Tools, kind: EkKind, challenge: EnrollmentChallenge): Promise<Response> {
  return activation(challenge, await activationBody(tools, kind, challenge));
}

async function challenged(body: Record<string, string>): Promise<EnrollmentChallenge> {
  const res = await request('POST', '/api/v1/devices/enrollments', body, '');
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as EnrollmentChallenge;
}

beforeAll(async () => {
  otherCa = await TestEkCa.create('CN=Other TPM Manufacturer CA, O=Example');
  await startSoftwareTpm({ caDir }).then((t) => tpms.push(t));
  for (const f of tpms[0]!.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
  writeFileSync(join(trustDir, 'other-manufacturer.pem'), otherCa.certificatePem);
  api = await startApi({ OTTER_TPM_CA_DIR: trustDir });
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  await api.publish('images/board/1.0.0', image, {
    hardware: 'board',
    version: '1.0.0',
    measurements: { 9: expectedPcrAfterBoot(sha(image)) },
  });
}, 60_000);
afterAll(async () => {
  await api?.close();
  await Promise.all(tpms.map((t) => t.stop()));
});

describe('a revoked TPM cannot come back as a new node', () => {
  let tools: Tpm2Tools;
  let revokedId: string;
  let issuer: string;
  let serial: string;

  beforeAll(async () => {
    const victim = await tpmWithTools();
    tools = victim.tools;
    const certificate = new X509Certificate(await tools.readEkCertificate('rsa'));
    serial = certificate.serialNumber.toLowerCase();
    issuer = 'CN=swtpm-localca';
    // The operator had pre-approved this TPM by its certificate, so it was admitted without approval ...
    expect(
      (await request('POST', '/api/v1/enrollment-allowlist', { kind: 'ek-issuer-serial', issuer, serial }))
        .status,
    ).toBe(204);
    const enrolled = await DeviceAgent.enroll({
      server: api.url,
      tcti: victim.tpm.tcti,
      stateDir: join(work, 'victim'),
      hardwareId: 'board',
      ekKind: 'rsa',
    });
    expect(enrolled.state).toBe('active');
    revokedId = enrolled.nodeId;
    // ... and then revoked.
    expect((await request('POST', `/api/v1/nodes/${revokedId}/revoke`)).status).toBe(200);
  }, 60_000);

  async function refusedUnchanged(
    body: Record<string, string>,
    status: number,
    code: RegExp,
  ): Promise<string> {
    const before = await stored();
    const message = await expectRefused(
      await request('POST', '/api/v1/devices/enrollments', body, ''),
      status,
      code,
    );
    expect(await stored()).toEqual(before);
    return message;
  }

  it('with its exact EK public area: 409', async () => {
    await refusedUnchanged(await enrollmentBody(tools, 'rsa'), 409, /^NODE_ALREADY_ENROLLED$/);
  });

  it('with an ekKind that is not its EK type: 400', async () => {
    const body = { ...(await enrollmentBody(tools, 'rsa')), ekKind: 'ecc' };
    expect(await refusedUnchanged(body, 400, /^VALIDATION_FAILED$/)).toBe(
      'ekKind is ecc but ekPublic is an RSA key',
    );
  });

  it('with its RSA exponent spelled out (0 becomes 65537, the same key): 400 EK_TEMPLATE_MISMATCH', async () => {
    const body = await enrollmentBody(tools, 'rsa', { ekPublic: (ek) => (ek.rsa!.exponentField = 65537) });
    const message = await refusedUnchanged(body, 400, /^EK_TEMPLATE_MISMATCH$/);
    expect(message).toMatch(/template L-1 .*RSA exponent field is 65537, the template has 0/);
  });

  it('with a changed authPolicy: another digest is 400; the high-range template of the same key is 409', async () => {
    const random = await enrollmentBody(tools, 'rsa', {
      ekPublic: (ek) => (ek.authPolicy = randomBytes(32)),
    });
    expect(await refusedUnchanged(random, 400, /^EK_TEMPLATE_MISMATCH$/)).toMatch(
      /authPolicy is not PolicyA_SHA256/,
    );
    // A valid TCG template (H-1: PolicyB and userWithAuth) around the same key: only the TPM's name by its
    // key catches this one, and MakeCredential would work with it.
    const highRange = await enrollmentBody(tools, 'rsa', {
      ekPublic: (ek) => {
        ek.authPolicy = ekPolicyDigests('sha256').b;
        ek.objectAttributes.value |= 1 << 6;
      },
    });
    await refusedUnchanged(highRange, 409, /^NODE_ALREADY_ENROLLED$/);
  });

  it('with unused objectAttributes bits set (reserved bits, stClear, noDA, encryptedDuplication): 400 each', async () => {
    for (const bit of [0, 2, 3, 8, 9, 10, 11, 12, 15, 19, 24, 31]) {
      const body = await enrollmentBody(tools, 'rsa', {
        ekPublic: (ek) => (ek.objectAttributes.value = (ek.objectAttributes.value | (1 << bit)) >>> 0),
      });
      expect(await refusedUnchanged(body, 400, /^EK_TEMPLATE_MISMATCH$/), `bit ${bit}`).toMatch(
        /objectAttributes/,
      );
    }
  });

  it('with its key certified by another trusted CA under the same serial: 409, not admitted', async () => {
    const certificate = await otherCa.issue(parseTpm2bPublic(await tools.ekPublic('rsa')), serial);
    expect(new X509Certificate(certificate).serialNumber.toLowerCase()).toBe(serial);
    await refusedUnchanged(
      await enrollmentBody(tools, 'rsa', { certificate }),
      409,
      /^NODE_ALREADY_ENROLLED$/,
    );
    // Another certificate and another (valid) template around the same key: nothing but the EK key is the
    // same, so only the TPM's name by its key refuses this one.
    const elsewhere = await enrollmentBody(tools, 'rsa', {
      certificate,
      ekPublic: (ek) => {
        ek.authPolicy = ekPolicyDigests('sha256').b;
        ek.objectAttributes.value |= 1 << 6;
      },
    });
    await refusedUnchanged(elsewhere, 409, /^NODE_ALREADY_ENROLLED$/);
    // Allow-listing that certificate too changes nothing: a TPM a node holds is never admitted.
    expect(
      (
        await request('POST', '/api/v1/enrollment-allowlist', {
          kind: 'ek-issuer-serial',
          issuer: otherCa.name,
          serial,
        })
      ).status,
    ).toBe(204);
    await refusedUnchanged(
      await enrollmentBody(tools, 'rsa', { certificate }),
      409,
      /^NODE_ALREADY_ENROLLED$/,
    );
    await refusedUnchanged(elsewhere, 409, /^NODE_ALREADY_ENROLLED$/);
    await api.db
      .deleteFrom('enrollment_allowlist')
      .where('kind', '=', 'ek-issuer-serial')
      .where('value', '=', ekIssuerSerialSha256(otherCa.name, serial))
      .execute();
    expect(
      (await api.db.selectFrom('nodes').select('state').where('id', '=', revokedId).executeTakeFirstOrThrow())
        .state,
    ).toBe('revoked');
  });

  it('another TPM whose certificate from another CA carries the same serial is another TPM: a new node, pending approval', async () => {
    // The allow-list names the revoked TPM's certificate (issuer + serial), and an entry made with a serial alone
    // before migration 0005 is still in the table: neither admits a certificate of another issuer.
    await api.db
      .insertInto('enrollment_allowlist')
      .values({ kind: 'ek-serial', value: serial, note: 'legacy', created_at: new Date().toISOString() })
      .execute();
    const other = await tpmWithTools();
    const certificate = await otherCa.issue(parseTpm2bPublic(await other.tools.ekPublic('rsa')), serial);
    const revokedBefore = await api.db
      .selectFrom('nodes')
      .selectAll()
      .where('id', '=', revokedId)
      .executeTakeFirstOrThrow();
    const challenge = await challenged(await enrollmentBody(other.tools, 'rsa', { certificate }));
    const res = await activate(other.tools, 'rsa', challenge);
    expect(res.status, await res.clone().text()).toBe(200);
    const result = (await res.json()) as ActivationResult;
    expect(result.nodeId).not.toBe(revokedId);
    expect(result.state).toBe('pending-approval');
    expect(
      await api.db.selectFrom('nodes').selectAll().where('id', '=', revokedId).executeTakeFirstOrThrow(),
    ).toEqual(revokedBefore);
  });
});

describe('two enrollments of one new TPM racing each other', () => {
  it('make one node: both started before either activated, both answered at once, one wins', async () => {
    const twin = await tpmWithTools();
    // Same AK in both (the tools keep the one they made): both are genuine proofs of this TPM.
    const challenges = [
      await challenged(await enrollmentBody(twin.tools, 'ecc')),
      await challenged(await enrollmentBody(twin.tools, 'ecc')),
    ];
    const bodies: unknown[] = [];
    for (const challenge of challenges) bodies.push(await activationBody(twin.tools, 'ecc', challenge));
    const nodesBefore = (await api.db.selectFrom('nodes').select('id').execute()).length;
    const answers = await Promise.all(challenges.map((c, i) => activation(c, bodies[i])));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([200, 409]);
    const lost = answers.find((a) => a.status === 409)!;
    expect(((await lost.json()) as { code: string }).code).toBe('NODE_ALREADY_ENROLLED');
    expect((await api.db.selectFrom('nodes').select('id').execute()).length).toBe(nodesBefore + 1);
  });
});

describe('a re-imaged board keeps its node only through an admin', () => {
  let board: SoftwareTpm;
  let nodeId: string;
  let original: DeviceAgent;
  const enroll = (dir: string) =>
    DeviceAgent.enroll({ server: api.url, tcti: board.tcti, stateDir: join(work, dir), hardwareId: 'board' });
  const nodeRow = () =>
    api.db.selectFrom('nodes').selectAll().where('id', '=', nodeId).executeTakeFirstOrThrow();
  const verdicts = async () =>
    (await api.db.selectFrom('attestation_verdicts').select('id').where('node_id', '=', nodeId).execute())
      .length;

  beforeAll(async () => {
    ({ tpm: board } = await tpmWithTools());
    nodeId = (await enroll('board-1')).nodeId;
    expect((await request('POST', `/api/v1/nodes/${nodeId}/approve`)).status).toBe(200);
    expect((await enroll('board-1')).state).toBe('active');
    original = await DeviceAgent.open(join(work, 'board-1'));
    await new SimulatedMeasuredBoot(original.tpmTools, 9).measureBootedSlot(writeSlot(image));
    expect((await original.attest('1.0.0')).passed).toBe(true);
    expect(
      (await request('PUT', `/api/v1/nodes/${nodeId}/labels`, { labels: { site: 'north' } })).status,
    ).toBe(200);
  }, 60_000);

  function writeSlot(bytes: Buffer): string {
    const file = join(work, `slot-${randomUUID()}.img`);
    writeFileSync(file, bytes);
    return file;
  }

  async function refusedUnchanged(dir: string): Promise<void> {
    const before = await stored();
    const error = await enroll(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeviceApiError);
    expect(error).toMatchObject({ status: 409, code: 'NODE_ALREADY_ENROLLED' });
    expect((error as Error).message).toContain('otter node re-enroll NODE');
    expect(await stored()).toEqual(before);
  }

  it('without the admin action, enrolling again with the same TPM is refused and changes nothing', async () => {
    await refusedUnchanged('board-2');
  });

  it('the admin action is refused to a release engineer (403) and to no token (401), and opens nothing', async () => {
    const created = await request('POST', '/api/v1/tokens', {
      name: `ci-${randomUUID()}`,
      role: 'release-engineer',
    });
    const engineer = ((await created.json()) as CreatedTokenDto).token;
    const before = await nodeRow();
    await expectRefused(
      await request('POST', `/api/v1/nodes/${nodeId}/re-enroll`, undefined, engineer),
      403,
      /FORBIDDEN/,
    );
    await expectRefused(
      await request('POST', `/api/v1/nodes/${nodeId}/re-enroll`, undefined, ''),
      401,
      /UNAUTHENTICATED/,
    );
    expect(await nodeRow()).toEqual(before);
    await refusedUnchanged('board-2');
  });

  it("another node's open window does not let a revoked or a foreign TPM in", async () => {
    const opened = await request('POST', `/api/v1/nodes/${nodeId}/re-enroll`);
    expect(opened.status).toBe(200);
    const revoked = await tpmWithTools();
    await DeviceAgent.enroll({
      server: api.url,
      tcti: revoked.tpm.tcti,
      stateDir: join(work, 'revoked-elsewhere'),
      hardwareId: 'board',
    }).then((r) => request('POST', `/api/v1/nodes/${r.nodeId}/revoke`));
    const before = await stored();
    await expectRefused(
      await request('POST', '/api/v1/devices/enrollments', await enrollmentBody(revoked.tools, 'ecc'), ''),
      409,
      /^NODE_ALREADY_ENROLLED$/,
    );
    expect(await stored()).toEqual(before);
    await api.db
      .updateTable('nodes')
      .set({ reenroll_until: null, reenroll_by: null })
      .where('id', '=', nodeId)
      .execute();
  });

  it('a window that ran out lets the TPM in no more', async () => {
    expect((await request('POST', `/api/v1/nodes/${nodeId}/re-enroll`)).status).toBe(200);
    // Time passes: the window's end is now behind.
    await api.db
      .updateTable('nodes')
      .set({ reenroll_until: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', nodeId)
      .execute();
    await refusedUnchanged('board-2');
    await api.db
      .updateTable('nodes')
      .set({ reenroll_until: null, reenroll_by: null })
      .where('id', '=', nodeId)
      .execute();
  });

  it('a re-enrollment keeps the hardware id: the same TPM as another hardware is refused', async () => {
    expect((await request('POST', `/api/v1/nodes/${nodeId}/re-enroll`)).status).toBe(200);
    const tools = new Tpm2Tools({ tcti: board.tcti, stateDir: mkdtempSync(join(work, 'other-hardware-')) });
    const body = { ...(await enrollmentBody(tools, 'ecc')), hardwareId: 'other-board' };
    const before = await stored();
    const message = await expectRefused(
      await request('POST', '/api/v1/devices/enrollments', body, ''),
      409,
      /^NODE_STATE_INVALID$/,
    );
    expect(message).toContain('a re-enrollment keeps the hardware id');
    expect(await stored()).toEqual(before);
    await api.db
      .updateTable('nodes')
      .set({ reenroll_until: null, reenroll_by: null })
      .where('id', '=', nodeId)
      .execute();
  });

  it('after `re-enroll` by an admin the same TPM re-pins the same node, once: same id and history, new AK, old device key dropped', async () => {
    const before = await nodeRow();
    const history = await verdicts();
    const oldAccess = await original.authenticatedApi();
    const opened = await request('POST', `/api/v1/nodes/${nodeId}/re-enroll`);
    expect(opened.status).toBe(200);
    const dto = (await opened.json()) as ReenrollmentDto;
    expect(dto.node).toMatchObject({ id: nodeId, state: 'active' });
    expect(Date.parse(dto.reenrollUntil)).toBeGreaterThan(Date.now());

    // The re-imaged board's agent, step by step: a new AK, the TPM's proof, and its boot state quoted.
    const stateDir = join(work, 'board-reimaged');
    const tools = new Tpm2Tools({ tcti: board.tcti, stateDir: join(stateDir, 'tpm') });
    const challenge = await challenged(await enrollmentBody(tools, 'ecc'));
    const res = await activate(tools, 'ecc', challenge);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toEqual({ nodeId, state: 'approved' });
    const repinned = await nodeRow();
    expect(repinned).toMatchObject({
      id: nodeId,
      state: 'approved',
      created_at: before.created_at,
      hardware_id: 'board',
      labels: before.labels,
      ek_key_sha256: before.ek_key_sha256,
      ek_issuer_serial_sha256: before.ek_issuer_serial_sha256,
      device_public: null,
      device_cert_serial: null,
      reenroll_until: null,
      reenroll_by: null,
    });
    expect(repinned.ak_public).toBe((await tools.createAttestationKey()).public.toString('base64'));
    expect(repinned.ak_public).not.toBe(before.ak_public);
    expect(await verdicts()).toBe(history);

    // The old image's identity is gone: its access token and its device key's assertions are refused.
    await expect(oldAccess.challenge()).rejects.toMatchObject({ status: 401 });
    await expect(original.authenticatedApi()).rejects.toMatchObject({ status: 401 });

    // The agent takes it from there: a new device key and certificate, then it attests with its new AK.
    await saveDeviceState(stateDir, {
      server: api.url,
      tcti: board.tcti,
      hardwareId: 'board',
      ekKind: 'ecc',
      nodeId,
    });
    expect(
      await DeviceAgent.enroll({ server: api.url, tcti: board.tcti, stateDir, hardwareId: 'board' }),
    ).toMatchObject({
      nodeId,
      state: 'active',
    });
    const reimaged = await DeviceAgent.open(stateDir);
    expect((await reimaged.attest('1.0.0')).passed).toBe(true);
    expect(await verdicts()).toBe(history + 1);

    // Once: a second re-imaging needs a second admin action.
    await refusedUnchanged('board-3');
  });
});
