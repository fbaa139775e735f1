// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect polyfill before it loads.
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

export interface TestTls {
  /** The private CA's certificate: what agents and the CLI are told to trust (--ca-file, OTTER_CA_FILE). */
  caFile: string;
  /** The api's certificate (for 127.0.0.1 and localhost) followed by the CA: OTTER_TLS_CERT. */
  certFile: string;
  /** The api's key: OTTER_TLS_KEY. */
  keyFile: string;
}

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A private CA and a server certificate from it, as a deployment with its own PKI has them. */
export async function createTestTls(): Promise<TestTls> {
  const dir = mkdtempSync(join(tmpdir(), 'otter-tls-'));
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 86_400_000);
  const caKeys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: 'CN=Otter test TLS CA',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  const serverKeys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject: 'CN=otter-api',
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey));
  const tls: TestTls = {
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'api-chain.pem'),
    keyFile: join(dir, 'api-key.pem'),
  };
  writeFileSync(tls.caFile, ca.toString('pem'));
  writeFileSync(tls.certFile, `${server.toString('pem')}\n${ca.toString('pem')}\n`);
  writeFileSync(
    tls.keyFile,
    createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }),
    { mode: 0o600 },
  );
  return tls;
}
