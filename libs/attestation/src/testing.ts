import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { AttestationError } from './attestation-error.js';
import { publicKeyObject, type TpmPublic } from './tpm-wire.js';

const run = promisify(execFile);

/** Persistent handles the test keys live at (they survive TPM restarts, unlike saved contexts). */
export const TEST_HANDLES = {
  ekRsa: '0x81010001',
  ekEccP384: '0x81010016',
  /** An ECC storage primary in the endorsement hierarchy: its children's quotes carry real counters. */
  endorsementPrimary: '0x81010010',
} as const;

const AK_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda';
const DEVICE_KEY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|noda';

/**
 * tpm2-tools against one (software) TPM, for tests: produces real TPM structures for the verifiers. There is
 * no resource manager on a raw swtpm connection, so every step flushes transient objects and sessions, and
 * keys are made persistent.
 */
export class Tpm2Tools {
  private constructor(
    readonly tcti: string,
    readonly dir: string,
  ) {}

  static async create(tcti: string): Promise<Tpm2Tools> {
    return new Tpm2Tools(tcti, await mkdtemp(join(tmpdir(), 'otter-tpm2-tools-')));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  read(name: string): Promise<Buffer> {
    return readFile(this.path(name));
  }

  write(name: string, data: Uint8Array): Promise<void> {
    return writeFile(this.path(name), data);
  }

  async run(tool: string, args: string[]): Promise<string> {
    const { stdout } = await run(tool, args, {
      cwd: this.dir,
      env: { ...process.env, TPM2TOOLS_TCTI: this.tcti },
      maxBuffer: 1 << 20,
    });
    return stdout;
  }

  async flush(): Promise<void> {
    await this.run('tpm2_flushcontext', ['-t']);
    await this.run('tpm2_flushcontext', ['-s']);
  }

  /** The TPM2B_PUBLIC of a loaded or persistent object. */
  async readPublic(handle: string): Promise<Buffer> {
    const file = `pub-${handle}.bin`;
    await this.run('tpm2_readpublic', ['-c', handle, '-o', file]);
    return this.read(file);
  }

  async nvRead(index: string): Promise<Buffer> {
    const file = `nv-${index}.bin`;
    await this.run('tpm2_nvread', [index, '-o', file]);
    return this.read(file);
  }

  /** The ECC P-256 storage primary in the endorsement hierarchy, persistent at TEST_HANDLES.endorsementPrimary. */
  async createEndorsementPrimary(): Promise<void> {
    await this.run('tpm2_createprimary', [
      '-C',
      'e',
      '-g',
      'sha256',
      '-G',
      'ecc256',
      '-a',
      'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda',
      '-c',
      'primary.ctx',
    ]);
    await this.run('tpm2_evictcontrol', ['-C', 'o', '-c', 'primary.ctx', TEST_HANDLES.endorsementPrimary]);
    await this.flush();
  }

  /**
   * Creates an ECC P-256 ECDSA-SHA256 key under the endorsement primary and persists it at `handle`: an
   * attestation key (restricted signing) or a device key (unrestricted signing), both with noDA. Returns its
   * TPM2B_PUBLIC as tpm2_create wrote it.
   */
  async createKey(kind: 'ak' | 'device', handle: string, attributes?: string): Promise<Buffer> {
    const base = `key-${handle}`;
    await this.run('tpm2_create', [
      '-C',
      TEST_HANDLES.endorsementPrimary,
      '-G',
      'ecc256:ecdsa-sha256:null',
      '-g',
      'sha256',
      '-a',
      attributes ?? (kind === 'ak' ? AK_ATTRIBUTES : DEVICE_KEY_ATTRIBUTES),
      '-u',
      `${base}.pub`,
      '-r',
      `${base}.priv`,
    ]);
    await this.flush();
    await this.run('tpm2_load', [
      '-C',
      TEST_HANDLES.endorsementPrimary,
      '-u',
      `${base}.pub`,
      '-r',
      `${base}.priv`,
      '-c',
      `${base}.ctx`,
    ]);
    await this.run('tpm2_evictcontrol', ['-C', 'o', '-c', `${base}.ctx`, handle]);
    await this.flush();
    return this.read(`${base}.pub`);
  }

  /** TPM2_Quote with `ak` over the selection (tpm2-tools syntax, e.g. `sha256:0,1,2`), qualified by `nonce`. */
  async quote(ak: string, selection: string, nonce: Buffer): Promise<{ attest: Buffer; signature: Buffer }> {
    await this.run('tpm2_quote', [
      '-c',
      ak,
      '-l',
      selection,
      '-q',
      nonce.toString('hex'),
      '-g',
      'sha256',
      '-m',
      'quote.msg',
      '-s',
      'quote.sig',
    ]);
    await this.flush();
    return { attest: await this.read('quote.msg'), signature: await this.read('quote.sig') };
  }

  /** The sha256 bank as `{ pcr: hex }`, read with tpm2_pcrread. */
  async pcrValues(pcrs: number[]): Promise<Record<number, string>> {
    const out = await this.run('tpm2_pcrread', [`sha256:${pcrs.join(',')}`]);
    const values: Record<number, string> = {};
    for (const match of out.matchAll(/^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})\s*$/gm)) {
      values[Number(match[1])] = match[2]!.toLowerCase();
    }
    return values;
  }

  async pcrExtend(pcr: number, digestHex: string): Promise<void> {
    await this.run('tpm2_pcrextend', [`${pcr}:sha256=${digestHex}`]);
  }

  /** TPM2_Certify of `object` by `ak` (tpm2-tools 5.4: the qualifying data is always 00 ff 55 aa). */
  async certify(object: string, ak: string): Promise<{ attest: Buffer; signature: Buffer }> {
    await this.run('tpm2_certify', [
      '-c',
      object,
      '-C',
      ak,
      '-g',
      'sha256',
      '-o',
      'certify.attest',
      '-s',
      'certify.sig',
    ]);
    await this.flush();
    return { attest: await this.read('certify.attest'), signature: await this.read('certify.sig') };
  }

  /** TPM2_Sign of sha256(message) by an unrestricted key: a TPMT_SIGNATURE over arbitrary bytes. */
  async sign(key: string, message: Buffer): Promise<Buffer> {
    await this.write('sign.msg', message);
    await this.run('tpm2_sign', ['-c', key, '-g', 'sha256', '-o', 'sign.sig', 'sign.msg']);
    await this.flush();
    return this.read('sign.sig');
  }

  /**
   * TPM2_ActivateCredential of a tpm2-tools credential blob with the AK at `ak` and the EK at `ek`. An EK
   * without userWithAuth (the RSA EK) is authorized by PolicySecret(endorsement) in a policy session.
   */
  async activateCredential(ak: string, ek: string, blob: Buffer, policySession: boolean): Promise<Buffer> {
    await this.write('credential.blob', blob);
    const args = ['-c', ak, '-C', ek, '-i', 'credential.blob', '-o', 'credential.out'];
    try {
      if (policySession) {
        await this.run('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx']);
        await this.run('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e']);
        args.push('-P', 'session:session.ctx');
      }
      await this.run('tpm2_activatecredential', args);
    } finally {
      await this.flush();
    }
    return this.read('credential.out');
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs `fn` and returns the code of the AttestationError it throws. Anything else (no error, or another
 * error class such as RangeError) is rethrown as a test failure.
 */
export function attestationErrorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof AttestationError) return error.code;
    throw new Error(`expected an AttestationError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected an AttestationError, nothing was thrown');
}

/** attestationErrorCode for async functions. */
export async function asyncAttestationErrorCode(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof AttestationError) return error.code;
    throw new Error(`expected an AttestationError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected an AttestationError, nothing was thrown');
}

const CA_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * A TPM manufacturer CA for tests: a self-signed root that issues EK certificates with the serial a test
 * chooses, for any EK public key (a real TPM's, so the TPM can still answer the credential). What a second
 * manufacturer, or a CA that reuses another's serials, looks like to the verifier.
 */
export class TestEkCa {
  private constructor(
    readonly name: string,
    /** The CA certificate, PEM: what OTTER_TPM_CA_DIR holds to trust it. */
    readonly certificatePem: string,
    private readonly keys: webcrypto.CryptoKeyPair,
  ) {}

  static async create(name: string): Promise<TestEkCa> {
    const keys = (await webcrypto.subtle.generateKey(CA_ALGORITHM, false, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const certificate = await X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 365 * 24 * 3600_000),
      keys,
      signingAlgorithm: CA_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      ],
    });
    return new TestEkCa(name, certificate.toString('pem'), keys);
  }

  /** An EK certificate (DER) for this EK public key, with this serial (hex). */
  async issue(ekPublic: TpmPublic, serialHex: string): Promise<Buffer> {
    const certificate = await X509CertificateGenerator.create({
      serialNumber: serialHex,
      subject: 'CN=test EK',
      issuer: this.name,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 365 * 24 * 3600_000),
      publicKey: publicKeyObject(ekPublic).export({ type: 'spki', format: 'der' }),
      signingKey: this.keys.privateKey,
      signingAlgorithm: CA_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(
          ekPublic.type === 'rsa' ? KeyUsageFlags.keyEncipherment : KeyUsageFlags.keyAgreement,
          true,
        ),
        new ExtendedKeyUsageExtension(['2.23.133.8.1']),
      ],
    });
    return Buffer.from(certificate.rawData);
  }
}
