import { execFile } from 'node:child_process';
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  verify,
  X509Certificate,
} from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, type SoftwareTpm } from './software-tpm.js';
import { Tpm2Tools, Tpm2ToolsError, type EkKind, type TpmKey } from './tpm2-tools.js';
import {
  ekPolicyDigests,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtSignatureEcdsa,
  publicKeyObject,
  TPM_ALG,
  TPM_ECC_CURVE,
  type TpmObjectAttributes,
} from '#otter/tpm-wire';

const execFileAsync = promisify(execFile);

let tpm: SoftwareTpm;
let scratch: string;
let stateDir: string;
let tools: Tpm2Tools;

async function tool(args: string[]): Promise<string> {
  const [name, ...rest] = args;
  return (await execFileAsync(name!, rest, { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } })).stdout;
}

/** What the verifier does: MakeCredential for an EK public area and a key name, without a TPM. */
async function makeCredential(ekPublic: Buffer, name: Buffer, secret: Buffer): Promise<Buffer> {
  const dir = await mkdtemp(join(scratch, 'mc-'));
  await writeFile(join(dir, 'ek.pub'), ekPublic);
  await writeFile(join(dir, 'secret'), secret);
  await execFileAsync('tpm2_makecredential', [
    '-T',
    'none',
    '-u',
    join(dir, 'ek.pub'),
    '-s',
    join(dir, 'secret'),
    '-n',
    name.toString('hex'),
    '-o',
    join(dir, 'blob'),
  ]);
  return readFile(join(dir, 'blob'));
}

async function leftovers(): Promise<string> {
  const out = await Promise.all(
    ['handles-transient', 'handles-loaded-session', 'handles-saved-session'].map((c) =>
      tool(['tpm2_getcap', c]),
    ),
  );
  return out.join('').trim();
}

async function lockoutCounter(): Promise<number> {
  const out = await tool(['tpm2_getcap', 'properties-variable']);
  return Number(/TPM2_PT_LOCKOUT_COUNTER:\s*(0x[0-9a-f]+)/i.exec(out)![1]);
}

/** Every agent operation once, each result checked the way the server will check it. */
async function exerciseEveryOperation(
  t: Tpm2Tools,
  expected: { ak: TpmKey; deviceKey: TpmKey },
): Promise<void> {
  expect((await t.createAttestationKey()).name).toEqual(expected.ak.name);
  expect((await t.createDeviceKey()).name).toEqual(expected.deviceKey.name);
  for (const kind of ['rsa', 'ecc'] as const) {
    expect((await t.readEkCertificate(kind)).length).toBeGreaterThan(500);
    const secret = randomBytes(32);
    const blob = await makeCredential(await t.ekPublic(kind), expected.ak.name, secret);
    expect(await t.activateCredential(blob, kind)).toEqual(secret);
  }
  const akKey = tpmPublicToKeyObject(expected.ak.public);
  const certify = await t.certifyDeviceKey();
  expect(verifyTpmSignature(akKey, certify.attest, certify.signature)).toBe(true);
  const jwt = await t.signJwt({ typ: 'JWT' }, { sub: 'node-1' });
  await jwtVerify(jwt, tpmPublicToKeyObject(expected.deviceKey.public));
  const digest = createHash('sha256').update(randomBytes(8)).digest('hex');
  const before = (await t.readPcrs([11]))[11]!;
  await t.extendPcr(11, digest);
  expect((await t.readPcrs([11]))[11]).toBe(extend(before, digest));
  const nonce = randomBytes(20);
  const quote = await t.quote(nonce, [0, 9, 11]);
  expect(verifyTpmSignature(akKey, quote.attest, quote.signature)).toBe(true);
  expect(quote.pcrValues[11]).toBe(extend(before, digest));
  expect(await leftovers()).toBe('');
}

/** The agent's keys as the verifier builds them: the TPM2B_PUBLIC bytes through the one wire parser. */
function tpmPublicToKeyObject(tpm2bPublic: Buffer): ReturnType<typeof createPublicKey> {
  return publicKeyObject(parseTpm2bPublic(tpm2bPublic));
}

function attributesSet(attributes: TpmObjectAttributes, names: Array<keyof TpmObjectAttributes>): boolean {
  return names.every((name) => attributes[name] === true);
}

function verifyTpmSignature(
  key: ReturnType<typeof createPublicKey>,
  message: Buffer,
  tpmtSignature: Buffer,
): boolean {
  const sig = parseTpmtSignatureEcdsa(tpmtSignature);
  expect(sig.hashAlg).toBe(TPM_ALG.SHA256);
  const rs = Buffer.concat([sig.r, sig.s].map((v) => Buffer.concat([Buffer.alloc(32 - v.length), v])));
  return verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, rs);
}

function extend(pcrHex: string, digestHex: string): string {
  return createHash('sha256')
    .update(Buffer.concat([Buffer.from(pcrHex, 'hex'), Buffer.from(digestHex, 'hex')]))
    .digest('hex');
}

describe('Tpm2Tools against swtpm', () => {
  let ak: TpmKey;
  let deviceKey: TpmKey;

  beforeAll(async () => {
    tpm = await startSoftwareTpm();
    scratch = await mkdtemp(join(tmpdir(), 'otter-tpm-spec-'));
    stateDir = join(scratch, 'agent-state');
    tools = new Tpm2Tools({ tcti: tpm.tcti, stateDir, timeoutMs: 10_000 });
  });

  afterAll(async () => {
    await tpm?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it.each(['rsa', 'ecc'] as const)(
    'reads the %s EK certificate and the EK public area it returns is the certified key',
    async (kind: EkKind) => {
      const certificate = new X509Certificate(await tools.readEkCertificate(kind));
      expect(certificate.issuer).toContain('swtpm-localca');
      const certified = certificate.publicKey.export({ format: 'jwk' });
      const ek = parseTpm2bPublic(await tools.ekPublic(kind));
      expect(attributesSet(ek.objectAttributes, ['fixedTPM', 'fixedParent', 'restricted', 'decrypt'])).toBe(
        true,
      );
      if (kind === 'rsa') {
        if (!ek.rsa) throw new Error('RSA EK expected');
        expect(ek.rsa.keyBits).toBe(2048);
        expect(ek.rsa.modulus.toString('base64url')).toBe(certified.n);
        expect(certified.e).toBe('AQAB');
        expect(ek.authPolicy).toEqual(ekPolicyDigests('sha256').a);
      } else {
        if (!ek.ecc) throw new Error('ECC EK expected');
        expect(ek.ecc.curveId).toBe(TPM_ECC_CURVE.NIST_P384);
        expect(certified.crv).toBe('P-384');
        expect(ek.ecc.x.toString('base64url')).toBe(certified.x);
        expect(ek.ecc.y.toString('base64url')).toBe(certified.y);
        // High-range template H-3: SHA-384 name and PolicyOR(PolicyA, PolicyC) as the spec lists it.
        expect(ek.nameAlg).toBe(TPM_ALG.SHA384);
        expect(ekPolicyDigests('sha384').a.toString('hex')).toBe(
          '8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db53',
        );
        expect(ek.authPolicy.toString('hex')).toBe(
          'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12',
        );
      }
    },
  );

  it('creates the AK once: restricted ECDSA P-256 signing key with noda, named as the TPM names it', async () => {
    ak = await tools.createAttestationKey();
    const pub = parseTpm2bPublic(ak.public);
    expect(pub.ecc?.curveId).toBe(TPM_ECC_CURVE.NIST_P256);
    expect(pub.scheme).toEqual({ scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 });
    expect(
      attributesSet(pub.objectAttributes, [
        'fixedTPM',
        'fixedParent',
        'sensitiveDataOrigin',
        'userWithAuth',
        'restricted',
        'sign',
        'noDA',
      ]),
    ).toBe(true);
    expect(pub.objectAttributes.decrypt).toBe(false);
    const nameFile = join(scratch, 'ak.name');
    await tool(['tpm2_readpublic', '-c', '0x81000002', '-n', nameFile]);
    expect(ak.name).toEqual(await readFile(nameFile));
    // Idempotent, also for an agent process started later with the same state directory.
    expect(await tools.createAttestationKey()).toEqual(ak);
    expect(await new Tpm2Tools({ tcti: tpm.tcti, stateDir }).createAttestationKey()).toEqual(ak);
  });

  it('creates the device key once: unrestricted ECDSA P-256 signing key with noda', async () => {
    deviceKey = await tools.createDeviceKey();
    const pub = parseTpm2bPublic(deviceKey.public);
    expect(pub.ecc?.curveId).toBe(TPM_ECC_CURVE.NIST_P256);
    expect(
      attributesSet(pub.objectAttributes, [
        'fixedTPM',
        'fixedParent',
        'sensitiveDataOrigin',
        'userWithAuth',
        'sign',
        'noDA',
      ]),
    ).toBe(true);
    expect(pub.objectAttributes.restricted).toBe(false);
    expect(deviceKey.name).not.toEqual(ak.name);
    expect(await tools.createDeviceKey()).toEqual(deviceKey);
    expect(await new Tpm2Tools({ tcti: tpm.tcti, stateDir }).createDeviceKey()).toEqual(deviceKey);
    // The key object built by our TPM2B_PUBLIC parser is the key tpm2-tools exports.
    const pemFile = join(scratch, 'device.pem');
    await tool(['tpm2_readpublic', '-c', '0x81000003', '-f', 'pem', '-o', pemFile]);
    expect(tpmPublicToKeyObject(deviceKey.public).export({ format: 'jwk' })).toEqual(
      createPublicKey(await readFile(pemFile)).export({ format: 'jwk' }),
    );
  });

  it.each(['rsa', 'ecc'] as const)(
    'activateCredential returns the secret sealed to the %s EK and the AK name',
    async (kind: EkKind) => {
      const secret = randomBytes(32);
      const blob = await makeCredential(await tools.ekPublic(kind), ak.name, secret);
      expect(await tools.activateCredential(blob, kind)).toEqual(secret);
      // The bare TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET, as a TypeScript verifier may send it, works too.
      expect(await tools.activateCredential(blob.subarray(8), kind)).toEqual(secret);
      expect(await leftovers()).toBe('');
    },
  );

  it('activateCredential refuses a credential made for another key, or for the other EK', async () => {
    const secret = randomBytes(32);
    // Attack: a verifier's challenge for some other key's name must not be answerable through this AK.
    const forDeviceKey = await makeCredential(await tools.ekPublic('rsa'), deviceKey.name, secret);
    await expect(tools.activateCredential(forDeviceKey, 'rsa')).rejects.toThrow(/tpm2_activatecredential/);
    const forOtherName = await makeCredential(
      await tools.ekPublic('ecc'),
      Buffer.concat([Buffer.from([0, 0x0b]), randomBytes(32)]),
      secret,
    );
    await expect(tools.activateCredential(forOtherName, 'ecc')).rejects.toBeInstanceOf(Tpm2ToolsError);
    const forRsaEk = await makeCredential(await tools.ekPublic('rsa'), ak.name, secret);
    await expect(tools.activateCredential(forRsaEk, 'ecc')).rejects.toBeInstanceOf(Tpm2ToolsError);
    expect(await leftovers()).toBe('');
  });

  it('certifyDeviceKey: a certify attestation naming the device key, signed by the AK', async () => {
    const { attest, signature } = await tools.certifyDeviceKey();
    const parsed = parseTpmsAttest(attest);
    if (!parsed.certify) throw new Error('certify attestation expected');
    expect(parsed.certify.name).toEqual(deviceKey.name);
    const akKey = tpmPublicToKeyObject(ak.public);
    expect(verifyTpmSignature(akKey, attest, signature)).toBe(true);
    // Attack: naming another key in the attestation breaks the AK's signature.
    const forged = Buffer.from(attest);
    forged[forged.length - 40]! ^= 0x01;
    expect(verifyTpmSignature(akKey, forged, signature)).toBe(false);
  });

  it('signJwt: the TPM-signed JWT verifies with jose and the device public key, and only with it', async () => {
    const deviceKeyObject = tpmPublicToKeyObject(deviceKey.public);
    const jwt = await tools.signJwt(
      { typ: 'JWT', kid: 'node-1' },
      { sub: 'node-1', aud: 'otter', exp: Math.floor(Date.now() / 1000) + 60 },
    );
    const { payload, protectedHeader } = await jwtVerify(jwt, deviceKeyObject, { audience: 'otter' });
    expect(payload.sub).toBe('node-1');
    expect(protectedHeader).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'node-1' });
    expect(Buffer.from(jwt.split('.')[2]!, 'base64url')).toHaveLength(64);

    const [h, , s] = jwt.split('.');
    const otherPayload = Buffer.from(JSON.stringify({ sub: 'node-2', aud: 'otter' })).toString('base64url');
    await expect(jwtVerify(`${h}.${otherPayload}.${s}`, deviceKeyObject)).rejects.toThrow();
    const { publicKey: stranger } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await expect(jwtVerify(jwt, stranger)).rejects.toThrow();
    await expect(tools.signJwt({ alg: 'HS256' }, {})).rejects.toThrow(/ES256/);

    const data = randomBytes(1000);
    const raw = await tools.signWithDeviceKey(data);
    expect(raw).toHaveLength(64);
    expect(verify('sha256', data, { key: deviceKeyObject, dsaEncoding: 'ieee-p1363' }, raw)).toBe(true);
  });

  it('extendPcr and readPcrs follow p′ = SHA-256(p ‖ d); bad input is refused before the TPM', async () => {
    const before = (await tools.readPcrs([10]))[10]!;
    expect(before).toBe('0'.repeat(64));
    const digest = createHash('sha256').update('measurement').digest('hex');
    await tools.extendPcr(10, digest);
    expect((await tools.readPcrs([10]))[10]).toBe(extend(before, digest));
    await expect(tools.extendPcr(10, 'abc')).rejects.toThrow(/64 hex/);
    await expect(tools.extendPcr(24, digest)).rejects.toThrow(/no PCR 24/);
    await expect(tools.readPcrs([])).rejects.toThrow(/no PCRs/);
  });

  it('quote: values are the ones tpm2_pcrread reports and hash to the signed pcrDigest over the nonce', async () => {
    const pcrs = [17, 0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 16, 23, 10];
    const nonce = randomBytes(32);
    const quote = await tools.quote(nonce, pcrs);
    const sorted = [...new Set(pcrs)].sort((a, b) => a - b);
    expect(Object.keys(quote.pcrValues).map(Number)).toEqual(sorted);

    const read = await tool(['tpm2_pcrread', `sha256:${sorted.join(',')}`]);
    const fromTool: Record<number, string> = {};
    for (const m of read.matchAll(/^\s*(\d+)\s*:\s*0x([0-9A-F]{64})$/gm))
      fromTool[Number(m[1])] = m[2]!.toLowerCase();
    expect(quote.pcrValues).toEqual(fromTool);
    expect(quote.pcrValues[17]).toBe('f'.repeat(64));
    expect(await tools.readPcrs(pcrs)).toEqual(fromTool);

    const parsed = parseTpmsAttest(quote.attest);
    if (!parsed.quote) throw new Error('quote attestation expected');
    expect(parsed.extraData).toEqual(nonce);
    expect(parsed.quote.selection.filter((s) => s.pcrs.length)).toEqual([
      { hashAlg: TPM_ALG.SHA256, pcrs: sorted },
    ]);
    const concatenated = Buffer.concat(sorted.map((p) => Buffer.from(quote.pcrValues[p]!, 'hex')));
    expect(parsed.quote.pcrDigest).toEqual(createHash('sha256').update(concatenated).digest());
    expect(verifyTpmSignature(tpmPublicToKeyObject(ak.public), quote.attest, quote.signature)).toBe(true);
  });

  it('leaves no transient object or session behind, after successes and failures alike', async () => {
    await expect(tools.activateCredential(randomBytes(100), 'ecc')).rejects.toBeInstanceOf(Tpm2ToolsError);
    expect(await leftovers()).toBe('');
    // More operations in a row than a raw TPM has object slots (3): nothing piles up.
    for (let i = 0; i < 4; i++) await tools.quote(randomBytes(8), [0]);
    await tools.certifyDeviceKey();
    expect(await leftovers()).toBe('');
  });

  it('keeps working across three power losses in a row: keys intact, no dictionary-attack lockout', async () => {
    for (let round = 0; round < 3; round++) {
      await exerciseEveryOperation(tools, { ak, deviceKey });
      await tpm.restart({ clean: false });
    }
    // The same process (handles already verified) and a freshly started agent both carry on.
    await exerciseEveryOperation(tools, { ak, deviceKey });
    await exerciseEveryOperation(new Tpm2Tools({ tcti: tpm.tcti, stateDir }), { ak, deviceKey });
    expect(await lockoutCounter()).toBe(0);
    await tpm.restart({ clean: true });
    await exerciseEveryOperation(tools, { ak, deviceKey });
  });

  it('reloads keys from the state directory when their persistent handles (and the SRK) are gone', async () => {
    await tool(['tpm2_evictcontrol', '-C', 'o', '-c', '0x81000002']);
    // This process already verified the AK's handle: the missing handle is noticed and the AK reloaded.
    await tools.quote(randomBytes(8), [0]);
    expect(await tool(['tpm2_getcap', 'handles-persistent'])).toContain('0x81000002');

    for (const handle of ['0x81000002', '0x81000003', '0x81000001']) {
      await tool(['tpm2_evictcontrol', '-C', 'o', '-c', handle]);
    }
    // The SRK is a primary key: re-created from the owner seed it is the same key, so the blobs load again.
    await exerciseEveryOperation(new Tpm2Tools({ tcti: tpm.tcti, stateDir }), { ak, deviceKey });
    expect(await leftovers()).toBe('');
  });

  it('uses configured handles, and never uses a key at its handle that its state directory does not record', async () => {
    const handles = { attestationKey: 0x81000010, deviceKey: 0x81000011 };
    const otherState = join(scratch, 'other-agent');
    const other = new Tpm2Tools({ tcti: tpm.tcti, stateDir: otherState, handles });
    const otherAk = await other.createAttestationKey();
    expect(otherAk.name).not.toEqual(ak.name);
    expect(await tool(['tpm2_getcap', 'handles-persistent'])).toContain('0x81000010');
    const secret = randomBytes(16);
    expect(
      await other.activateCredential(
        await makeCredential(await other.ekPublic('rsa'), otherAk.name, secret),
        'rsa',
      ),
    ).toEqual(secret);

    // Attack: a third state directory claiming the same handle takes it over with a fresh key; the agent that
    // owned it then refuses to use the foreign key instead of silently signing with it.
    const intruder = new Tpm2Tools({ tcti: tpm.tcti, stateDir: join(scratch, 'intruder'), handles });
    expect((await intruder.createAttestationKey()).name).not.toEqual(otherAk.name);
    await expect(
      new Tpm2Tools({ tcti: tpm.tcti, stateDir: otherState, handles }).quote(randomBytes(8), [0]),
    ).rejects.toMatchObject({
      code: 'HANDLE_CONFLICT',
    });
    for (const handle of ['0x81000010']) await tool(['tpm2_evictcontrol', '-C', 'o', '-c', handle]);
  });

  it('reports failures with the tool, its stderr and the response code; every call has a time limit', async () => {
    const unreachable = new Tpm2Tools({ tcti: 'swtpm:host=127.0.0.1,port=9', stateDir });
    const error = await unreachable.readPcrs([0]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Tpm2ToolsError);
    expect((error as Tpm2ToolsError).message).toMatch(/^tpm2_pcrread sha256:0 -o .* exited with 1: .*tcti/is);

    const impatient = new Tpm2Tools({ tcti: tpm.tcti, stateDir, timeoutMs: 1 });
    const timeout = await impatient.readPcrs([0]).catch((e: unknown) => e);
    expect(timeout).toMatchObject({ code: 'TOOL_FAILED', timedOut: true });

    const ownerLocked = await tools.extendPcr(17, '0'.repeat(64)).catch((e: unknown) => e);
    expect(ownerLocked).toBeInstanceOf(Tpm2ToolsError);
    expect((ownerLocked as Tpm2ToolsError).responseCode).toMatch(/^0x/);
  });
});
