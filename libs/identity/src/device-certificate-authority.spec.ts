import 'reflect-metadata';
import { generateKeyPairSync, randomUUID, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { OtterError } from '#otter/errors';
import { DeviceCertificateAuthority } from './device-certificate-authority.js';

const PASSPHRASE = 'identity-spec-passphrase';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function dataDir(): string {
  return mkdtempSync(join(tmpdir(), 'otter-identity-ca-'));
}

function deviceKey(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

async function refusal(promise: Promise<unknown>): Promise<OtterError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OtterError);
  return error as OtterError;
}

async function expectRejected(promise: Promise<unknown>, reason: string): Promise<void> {
  const error = await refusal(promise);
  expect(error.code).toBe('UNAUTHENTICATED');
  expect(error.details).toEqual({ reason });
}

describe('DeviceCertificateAuthority', () => {
  it('issues a certificate for the device key that chains to the CA, with the SAN, EKU clientAuth and lifetime asked for', async () => {
    const dir = dataDir();
    const ca = new DeviceCertificateAuthority({ dataDir: dir, passphrase: PASSPHRASE });
    const device = deviceKey();
    const nodeId = randomUUID();
    const before = Date.now();
    const issued = await ca.issue({
      nodeId,
      hardwareId: 'rpi4',
      publicKey: device.publicKey,
      lifetimeSeconds: 7 * 24 * 3600,
    });

    // node:crypto's (OpenSSL's) view.
    const caPem = await ca.certificatePem();
    const caCert = new X509Certificate(caPem);
    const cert = new X509Certificate(issued.pem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.publicKey.equals(device.publicKey)).toBe(true);
    expect(cert.subject).toBe(`CN=${nodeId}`);
    expect(cert.issuer).toBe('CN=Otter Device CA');
    expect(cert.subjectAltName).toBe(`URI:urn:otter:node:${nodeId}, URI:urn:otter:hardware:rpi4`);
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]); // node names the extended key usage `keyUsage`
    expect(cert.ca).toBe(false);
    expect(cert.serialNumber.toLowerCase()).toBe(issued.serialNumber);
    expect(cert.validFromDate).toEqual(issued.notBefore);
    expect(cert.validToDate).toEqual(issued.notAfter);
    expect(cert.validToDate.getTime() - cert.validFromDate.getTime()).toBe(7 * 24 * 3600 * 1000);
    expect(issued.notBefore.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(issued.notBefore.getTime()).toBeLessThanOrEqual(Date.now());

    // @peculiar/x509's view of every extension.
    const parsed = new x509.X509Certificate(issued.pem);
    const parsedCa = new x509.X509Certificate(caPem);
    expect(await parsed.verify({ publicKey: parsedCa, signatureOnly: true })).toBe(true);
    expect(parsed.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });
    expect(issued.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/); // 16 bytes, top bit clear: positive
    const basic = parsed.getExtension(x509.BasicConstraintsExtension);
    expect(basic).toMatchObject({ ca: false, critical: true });
    const usage = parsed.getExtension(x509.KeyUsagesExtension);
    expect(usage).toMatchObject({ usages: x509.KeyUsageFlags.digitalSignature, critical: true });
    expect(parsed.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([CLIENT_AUTH]);
    expect(parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([
      { type: 'url', value: `urn:otter:node:${nodeId}` },
      { type: 'url', value: 'urn:otter:hardware:rpi4' },
    ]);
    const caSki = parsedCa.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    expect(caSki).toMatch(/^[0-9a-f]{40}$/);
    expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(caSki);
    const deviceSki = await x509.SubjectKeyIdentifierExtension.create(
      device.publicKey.export({ type: 'spki', format: 'der' }),
    );
    expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toBe(deviceSki.keyId);

    // And the CA accepts its own certificate back.
    const verified = await ca.verify(issued.pem);
    expect(verified).toMatchObject({ nodeId, hardwareId: 'rpi4', serialNumber: issued.serialNumber });
    expect(verified.publicKey.equals(device.publicKey)).toBe(true);
  });

  it('creates a self-signed P-256 CA; its key is sealed on disk and its certificate published as device-ca.pem', async () => {
    const dir = dataDir();
    const ca = new DeviceCertificateAuthority({ dataDir: dir, passphrase: PASSPHRASE });
    const pem = await ca.certificatePem();
    const cert = new x509.X509Certificate(pem);
    expect(cert.subject).toBe('CN=Otter Device CA');
    expect(await cert.isSelfSigned()).toBe(true);
    expect(cert.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    expect(cert.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: true, critical: true });
    expect(cert.getExtension(x509.KeyUsagesExtension)).toMatchObject({
      usages: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
      critical: true,
    });
    expect(readFileSync(join(dir, 'keys', 'device-ca.pem'), 'utf8')).toBe(pem);
    const sealed = readFileSync(join(dir, 'keys', 'device-ca.sealed.json'), 'utf8');
    expect(sealed).not.toContain('PRIVATE KEY');
    expect(JSON.parse(sealed)).toMatchObject({ v: 1, kdf: 'scrypt' });
    expect(statSync(join(dir, 'keys', 'device-ca.sealed.json')).mode & 0o777).toBe(0o600);

    // The CA survives a restart, and only with the right passphrase.
    expect(
      await new DeviceCertificateAuthority({ dataDir: dir, passphrase: PASSPHRASE }).certificatePem(),
    ).toBe(pem);
    await expect(
      new DeviceCertificateAuthority({ dataDir: dir, passphrase: 'not-the-passphrase' }).certificatePem(),
    ).rejects.toThrow(/wrong OTTER_KEY_PASSPHRASE/);
  });

  it('ends up with one CA when several processes start on the same data dir at once', async () => {
    const dir = dataDir();
    const instances = Array.from(
      { length: 4 },
      () => new DeviceCertificateAuthority({ dataDir: dir, passphrase: PASSPHRASE }),
    );
    const pems = await Promise.all(instances.map((ca) => ca.certificatePem()));
    expect(new Set(pems).size).toBe(1);
    expect(readFileSync(join(dir, 'keys', 'device-ca.pem'), 'utf8')).toBe(pems[0]);
    // Each signs with that one key: what one issues, every other accepts.
    const issued = await instances[1].issue({
      nodeId: randomUUID(),
      hardwareId: 'rpi4',
      publicKey: deviceKey().publicKey,
      lifetimeSeconds: 3600,
    });
    for (const ca of instances) await expect(ca.verify(issued.pem)).resolves.toBeDefined();
  });

  it('refuses a certificate issued by another CA, even one with the same name', async () => {
    const ours = new DeviceCertificateAuthority({ dataDir: dataDir(), passphrase: PASSPHRASE });
    const theirs = new DeviceCertificateAuthority({ dataDir: dataDir(), passphrase: PASSPHRASE });
    const foreign = await theirs.issue({
      nodeId: randomUUID(),
      hardwareId: 'rpi4',
      publicKey: deviceKey().publicKey,
      lifetimeSeconds: 3600,
    });
    expect(new X509Certificate(foreign.pem).issuer).toBe('CN=Otter Device CA');
    await expectRejected(ours.verify(foreign.pem), 'unknown_issuer');
  });

  it('refuses a certificate naming our CA as issuer (no key identifier) but signed by another key', async () => {
    const ca = new DeviceCertificateAuthority({ dataDir: dataDir(), passphrase: PASSPHRASE });
    await ca.certificatePem();
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const attacker = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const forged = await x509.X509CertificateGenerator.create({
      subject: [{ CN: ['forged-node'] }],
      issuer: 'CN=Otter Device CA',
      publicKey: deviceKey().publicKey.export({ type: 'spki', format: 'der' }),
      signingKey: attacker.privateKey,
      signingAlgorithm: alg,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'urn:otter:node:forged-node' }]),
      ],
    });
    await expectRejected(ca.verify(forged.toString('pem')), 'bad_signature');
  });

  it('refuses a certificate whose signed content was altered', async () => {
    const ca = new DeviceCertificateAuthority({ dataDir: dataDir(), passphrase: PASSPHRASE });
    const issued = await ca.issue({
      nodeId: 'node-aaaa',
      hardwareId: 'rpi4',
      publicKey: deviceKey().publicKey,
      lifetimeSeconds: 3600,
    });
    const der = Buffer.from(new X509Certificate(issued.pem).raw);
    const at = der.indexOf(Buffer.from('node-aaaa'));
    expect(at).toBeGreaterThan(0);
    der.write('node-bbbb', at); // the subject CN, same length
    const tampered = new x509.X509Certificate(der).toString('pem');
    await expectRejected(ca.verify(tampered), 'bad_signature');
  });

  it('refuses an expired certificate and one not valid yet', async () => {
    const dir = dataDir();
    const issuedAt = Date.now();
    const ca = new DeviceCertificateAuthority({
      dataDir: dir,
      passphrase: PASSPHRASE,
      now: () => new Date(issuedAt),
    });
    const issued = await ca.issue({
      nodeId: randomUUID(),
      hardwareId: 'rpi4',
      publicKey: deviceKey().publicKey,
      lifetimeSeconds: 60,
    });
    const at = (ms: number) =>
      new DeviceCertificateAuthority({ dataDir: dir, passphrase: PASSPHRASE, now: () => new Date(ms) });
    await expect(at(issued.notAfter.getTime()).verify(issued.pem)).resolves.toBeDefined();
    await expectRejected(at(issued.notAfter.getTime() + 1000).verify(issued.pem), 'expired');
    await expectRejected(at(issued.notBefore.getTime() - 1000).verify(issued.pem), 'not_yet_valid');
  });

  it('refuses its own CA certificate and non-certificates as device certificates', async () => {
    const ca = new DeviceCertificateAuthority({ dataDir: dataDir(), passphrase: PASSPHRASE });
    await expectRejected(ca.verify(await ca.certificatePem()), 'not_a_device_certificate');
    await expectRejected(
      ca.verify('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
      'malformed',
    );
    await expectRejected(ca.verify('x'.repeat(100_000)), 'malformed');
  });

  it('refuses to certify anything but a P-256 public key, or odd names and lifetimes', async () => {
    const ca = new DeviceCertificateAuthority({ dataDir: dataDir(), passphrase: PASSPHRASE });
    const good = {
      nodeId: randomUUID(),
      hardwareId: 'rpi4',
      publicKey: deviceKey().publicKey,
      lifetimeSeconds: 60,
    };
    const bad = [
      { ...good, publicKey: generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey },
      { ...good, publicKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey },
      { ...good, publicKey: deviceKey().privateKey },
      { ...good, nodeId: 'a,CN=admin' },
      { ...good, nodeId: 'a:b' },
      { ...good, nodeId: '' },
      { ...good, hardwareId: 'RPi 4' },
      { ...good, lifetimeSeconds: 0 },
      { ...good, lifetimeSeconds: 1.5 },
    ];
    for (const request of bad) expect((await refusal(ca.issue(request))).code).toBe('VALIDATION_FAILED');
    await expect(ca.issue(good)).resolves.toBeDefined();
  });
});

describe('DeviceCertificateAuthority lifetime and rotation', () => {
  const HOUR = 3600;
  /** A CA on a clock the test moves, with a one-hour CA lifetime. */
  function clockedCa(dir: string, clock: { t: number }): DeviceCertificateAuthority {
    return new DeviceCertificateAuthority({
      dataDir: dir,
      passphrase: PASSPHRASE,
      caLifetimeSeconds: HOUR,
      now: () => new Date(clock.t),
    });
  }
  const request = (lifetimeSeconds: number) => ({
    nodeId: randomUUID(),
    hardwareId: 'rpi4',
    publicKey: deviceKey().publicKey,
    lifetimeSeconds,
  });
  const bundle = (dir: string): X509Certificate[] =>
    readFileSync(join(dir, 'keys', 'device-ca.pem'), 'utf8')
      .split(/(?<=-----END CERTIFICATE-----\n)/)
      .filter((pem) => pem.trim())
      .map((pem) => new X509Certificate(pem));
  const issuerOf = (pem: string, cas: X509Certificate[]): number =>
    cas.findIndex((ca) => new X509Certificate(pem).checkIssued(ca));

  it('never lets a device certificate outlive its CA: the lifetime is cut at the CA notAfter', async () => {
    const clock = { t: Math.floor(Date.now() / 1000) * 1000 };
    const ca = clockedCa(dataDir(), clock);
    const caNotAfter = new X509Certificate(await ca.certificatePem()).validToDate;
    const issued = await ca.issue(request(100 * 365 * 24 * HOUR));
    expect(issued.notAfter).toEqual(caNotAfter);
    expect(new X509Certificate(issued.pem).validToDate).toEqual(caNotAfter);
  });

  it('publishes a successor at half the CA lifetime, issues from it at two thirds, and keeps accepting the old CA until it expires', async () => {
    const dir = dataDir();
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    const clock = { t: t0 };
    const ca = clockedCa(dir, clock);
    const first = new X509Certificate(await ca.certificatePem());
    expect(bundle(dir).map((c) => c.fingerprint256)).toEqual([first.fingerprint256]);

    clock.t = t0 + (HOUR / 2 - 1) * 1000;
    const early = await ca.issue(request(HOUR / 3));
    expect(early.caGeneration).toBe(1);
    expect(existsSync(join(dir, 'keys', 'device-ca.2.sealed.json'))).toBe(false);

    // Half way: the successor exists and is in the trust bundle (newest first), but does not sign yet.
    clock.t = t0 + (HOUR / 2) * 1000;
    const beforeHandover = await ca.issue(request(HOUR / 3));
    expect(beforeHandover.caGeneration).toBe(1);
    const published = bundle(dir);
    expect(published).toHaveLength(2);
    expect(published[1]!.fingerprint256).toBe(first.fingerprint256);
    const second = published[0]!;
    expect(second.validFromDate.getTime()).toBe(clock.t);
    expect(statSync(join(dir, 'keys', 'device-ca.2.sealed.json')).mode & 0o777).toBe(0o600);

    // Two thirds: the successor signs; what the first CA signed is still accepted.
    clock.t = t0 + ((2 * HOUR) / 3 + 1) * 1000;
    const afterHandover = await ca.issue(request(HOUR / 3));
    expect(afterHandover.caGeneration).toBe(2);
    expect(issuerOf(afterHandover.pem, [first, second])).toBe(1);
    expect(afterHandover.notAfter.getTime() - afterHandover.notBefore.getTime()).toBe((HOUR / 3) * 1000);
    expect((await ca.verify(beforeHandover.pem)).serialNumber).toBe(beforeHandover.serialNumber);
    expect((await ca.verify(afterHandover.pem)).serialNumber).toBe(afterHandover.serialNumber);
    expect(await ca.certificatePem()).toBe(second.toString());

    // Past the first CA's expiry: its key is deleted, it leaves the bundle, and nothing it signed is valid. The
    // second CA is half way through its own life by then, so its successor is published in turn.
    clock.t = first.validToDate.getTime() + 1000;
    await ca.maintain();
    expect(existsSync(join(dir, 'keys', 'device-ca.sealed.json'))).toBe(false);
    const later = bundle(dir);
    expect(later.map((c) => c.fingerprint256)).not.toContain(first.fingerprint256);
    expect(later[1]!.fingerprint256).toBe(second.fingerprint256);
    expect(beforeHandover.notAfter.getTime()).toBeLessThanOrEqual(first.validToDate.getTime());
    // Its CA is gone from the trust store: the certificate has no issuer any more.
    await expectRejected(ca.verify(beforeHandover.pem), 'unknown_issuer');
    expect((await ca.verify(afterHandover.pem)).nodeId).toBeDefined();
    // A process started now finds the CAs that remain, and does not recreate the retired one.
    expect(await clockedCa(dir, clock).certificatePem()).toBe(second.toString());
    expect(
      readdirSync(join(dir, 'keys'))
        .filter((f) => f.startsWith('device-ca.'))
        .sort(),
    ).toEqual(['device-ca.2.sealed.json', 'device-ca.3.sealed.json', 'device-ca.pem']);
  });

  it('creates one successor when several processes rotate at once, and each accepts what the others issue', async () => {
    const dir = dataDir();
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    const clock = { t: t0 };
    const processes = Array.from({ length: 4 }, () => clockedCa(dir, clock));
    await Promise.all(processes.map((ca) => ca.certificatePem()));
    clock.t = t0 + ((2 * HOUR) / 3 + 1) * 1000;
    const issued = await Promise.all(processes.map((ca) => ca.issue(request(60))));
    expect(new Set(issued.map((c) => c.caGeneration))).toEqual(new Set([2]));
    expect(new Set(await Promise.all(processes.map((ca) => ca.certificatePem()))).size).toBe(1);
    expect(bundle(dir)).toHaveLength(2);
    for (const ca of processes) for (const c of issued) await expect(ca.verify(c.pem)).resolves.toBeDefined();
  });

  it('learns a successor another process created when a certificate it signed comes in', async () => {
    const dir = dataDir();
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    const clock = { t: t0 };
    const verifier = clockedCa(dir, clock);
    await verifier.certificatePem();
    clock.t = t0 + ((2 * HOUR) / 3 + 1) * 1000;
    const issued = await clockedCa(dir, clock).issue(request(60));
    expect(issued.caGeneration).toBe(2);
    expect((await verifier.verify(issued.pem)).serialNumber).toBe(issued.serialNumber);
  });

  it('after downtime past its expiry, a new CA takes over at once and the expired one is retired', async () => {
    const dir = dataDir();
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    const clock = { t: t0 };
    const first = new X509Certificate(await clockedCa(dir, clock).certificatePem());
    clock.t = t0 + 2 * HOUR * 1000;
    const ca = clockedCa(dir, clock);
    const issued = await ca.issue(request(HOUR / 3));
    expect(issued.caGeneration).toBe(2);
    expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBe((HOUR / 3) * 1000);
    const published = bundle(dir);
    expect(published).toHaveLength(1);
    expect(published[0]!.fingerprint256).not.toBe(first.fingerprint256);
    expect(existsSync(join(dir, 'keys', 'device-ca.sealed.json'))).toBe(false);
  });
});
