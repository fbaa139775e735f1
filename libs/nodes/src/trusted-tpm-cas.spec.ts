import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BasicConstraintsExtension, X509CertificateGenerator } from '@peculiar/x509';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '#otter/config';
import { TrustedTpmCas } from './trusted-tpm-cas.js';

async function caPem(name: string): Promise<string> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify']);
  const certificate = await X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 3600_000),
    keys,
    signingAlgorithm: algorithm,
    extensions: [new BasicConstraintsExtension(true, undefined, true)],
  });
  return certificate.toString('pem');
}

function trust(dir: string): TrustedTpmCas {
  return new TrustedTpmCas(loadConfig({ OTTER_TPM_CA_DIR: dir, OTTER_LOG_LEVEL: 'silent' }));
}

const subjects = (cas: TrustedTpmCas): string[] => cas.certificates().map((c) => c.subject);

afterEach(() => vi.restoreAllMocks());

describe('TrustedTpmCas', () => {
  it('loads once at boot and not per call; SIGHUP reloads; a bad file keeps the old set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-tpm-cas-'));
    writeFileSync(join(dir, 'vendor-a.pem'), await caPem('Vendor A'));
    writeFileSync(join(dir, 'notes.txt'), 'not a certificate, and not a .pem or .crt file');
    const cas = trust(dir);
    await cas.onModuleInit();
    cas.onApplicationBootstrap();
    try {
      expect(subjects(cas)).toEqual(['CN=Vendor A']);

      // Added on disk: not seen until a reload.
      writeFileSync(join(dir, 'vendor-b.crt'), (await caPem('Vendor B')) + (await caPem('Vendor B2')));
      expect(subjects(cas)).toEqual(['CN=Vendor A']);
      expect(await cas.reload()).toBe(true);
      expect(subjects(cas)).toEqual(['CN=Vendor A', 'CN=Vendor B', 'CN=Vendor B2']);

      // A file with no certificate, then one with a broken certificate: each reload keeps the set in use.
      const errors = vi.spyOn(cas['logger'], 'error').mockImplementation(() => undefined);
      writeFileSync(join(dir, 'vendor-c.pem'), 'hello');
      expect(await cas.reload()).toBe(false);
      writeFileSync(
        join(dir, 'vendor-c.pem'),
        '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      );
      expect(await cas.reload()).toBe(false);
      expect(subjects(cas)).toEqual(['CN=Vendor A', 'CN=Vendor B', 'CN=Vendor B2']);
      expect(errors).toHaveBeenCalledTimes(2);
      expect(JSON.stringify(errors.mock.calls[1])).toMatch(/vendor-c\.pem does not parse/);

      // The signal does the same: fixed file, SIGHUP, new set.
      writeFileSync(join(dir, 'vendor-c.pem'), await caPem('Vendor C'));
      process.emit('SIGHUP', 'SIGHUP');
      await vi.waitFor(() => expect(subjects(cas)).toContain('CN=Vendor C'));
      rmSync(join(dir, 'vendor-a.pem'));
      process.emit('SIGHUP', 'SIGHUP');
      await vi.waitFor(() => expect(subjects(cas)).not.toContain('CN=Vendor A'));
    } finally {
      cas.onApplicationShutdown();
    }
    // Shut down: a SIGHUP no longer reaches it.
    expect(process.listeners('SIGHUP')).not.toContain(cas['onHangup']);
  });

  it('refuses to boot on a bad CA file, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-tpm-cas-'));
    writeFileSync(join(dir, 'broken.pem'), 'no certificate here');
    await expect(trust(dir).onModuleInit()).rejects.toThrow(/broken\.pem holds no PEM certificate/);
  });

  it('boots with no CA directory: every EK certificate is then untrusted', async () => {
    const cas = trust(join(tmpdir(), `otter-no-such-dir-${process.pid}`));
    await cas.onModuleInit();
    expect(cas.certificates()).toEqual([]);
  });
});
