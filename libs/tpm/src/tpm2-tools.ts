import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ecdsaSignatureToRawRs,
  ekPolicyDigests,
  ekTemplate,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtSignatureEcdsa,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  tpmObjectName,
  withCredentialBlobHeader,
} from '#otter/tpm-wire';

export type EkKind = 'rsa' | 'ecc';

/**
 * Persistent handles the agent uses. The EK and SRK handles are the TCG-reserved ones (swtpm_setup persists its
 * certified EKs at 0x81010001 and 0x81010016); the AK and device key take the next owner handles.
 */
export interface TpmPersistentHandles {
  /** RSA 2048 EK, TCG default (low-range) template: the key of the certificate at NV 0x01c00002. */
  ekRsa: number;
  /** ECC P-384 EK, TCG high-range template H-3: the key of the certificate at NV 0x01c00016. */
  ekEcc: number;
  /** Storage root key (ECC P-256, noda): parent of the AK and the device key. */
  srk: number;
  attestationKey: number;
  deviceKey: number;
}

export const DEFAULT_TPM_HANDLES: Readonly<TpmPersistentHandles> = {
  ekRsa: 0x81010001,
  ekEcc: 0x81010016,
  srk: 0x81000001,
  attestationKey: 0x81000002,
  deviceKey: 0x81000003,
};

/** NV indices of the EK certificates the agent reads: RSA 2048 (TCG template L-1) and ECC NIST P-384 (H-3). */
export const EK_CERTIFICATE_NV_INDEX: Readonly<Record<EkKind, number>> = {
  rsa: ekTemplate('L-1').certificateNvIndex,
  ecc: ekTemplate('H-3').certificateNvIndex,
};

export interface Tpm2ToolsOptions {
  /** TCTI string, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`. */
  tcti: string;
  /** Directory holding the agent's key blobs (public/private parts under the SRK) and their handles. */
  stateDir: string;
  handles?: Partial<TpmPersistentHandles>;
  /** Time limit of one tpm2-tools call; key generation gets `keyGenerationTimeoutMs`. */
  timeoutMs?: number;
  keyGenerationTimeoutMs?: number;
}

export interface TpmKey {
  /** TPM2B_PUBLIC. */
  public: Buffer;
  /** TPM name: nameAlg ‖ SHA-256(TPMT_PUBLIC). */
  name: Buffer;
}

export interface TpmQuote {
  /** TPMS_ATTEST the AK signed. */
  attest: Buffer;
  /** TPMT_SIGNATURE (ECDSA, SHA-256) over `attest`. */
  signature: Buffer;
  /** SHA-256 bank values of the quoted PCRs, lowercase hex; their hash is the quote's pcrDigest. */
  pcrValues: Record<number, string>;
}

export type TpmErrorCode =
  | 'TOOL_FAILED'
  | 'INVALID_ARGUMENT'
  | 'KEY_NOT_CREATED'
  | 'KEY_LOST'
  | 'HANDLE_CONFLICT'
  | 'EK_CERTIFICATE_MISSING'
  | 'UNSUPPORTED_EK_POLICY'
  | 'QUOTE_INCONSISTENT';

export class TpmError extends Error {
  override readonly name: string = 'TpmError';
  constructor(
    readonly code: TpmErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A tpm2-tools process that failed; `stderr` carries the tool's (and the TSS's) explanation. */
export class Tpm2ToolsError extends TpmError {
  override readonly name = 'Tpm2ToolsError';
  /** The TPM or TSS response code the tool reported, e.g. `0x921` (DA lockout), if any. */
  readonly responseCode: string | undefined;
  constructor(
    readonly tool: string,
    readonly args: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly timedOut: boolean,
  ) {
    const how = timedOut
      ? 'timed out'
      : signal
        ? `was killed by ${signal}`
        : `exited with ${exitCode ?? 'unknown status'}`;
    super('TOOL_FAILED', `${tool} ${args.join(' ')} ${how}: ${stderr.trim() || '(no stderr)'}`);
    const codes = [...stderr.matchAll(/\((0x[0-9a-f]+)\)/gi)].map((m) => m[1]!.toLowerCase());
    this.responseCode = codes.at(-1)?.replace(/^0x0*(?=[0-9a-f])/, '0x');
  }

  /** The tool could not resolve a persistent handle: nothing is persisted there (TPM_RC_HANDLE on ReadPublic). */
  get handleMissing(): boolean {
    return /Esys_TR_FromTPMPublic\(0x18B\)/i.test(this.stderr);
  }
}

type KeyRole = 'attestationKey' | 'deviceKey';

interface KeyTemplate {
  file: string;
  algorithm: string;
  attributes: string;
}

// `:null` is the symmetric part of the algorithm spec: signing keys must have none (without it, 0x2D6).
// noda keeps key use out of dictionary-attack accounting, so power losses never lock the keys out (0x921).
const KEY_TEMPLATES: Record<KeyRole, KeyTemplate> = {
  attestationKey: {
    file: 'attestation-key.json',
    algorithm: 'ecc256:ecdsa-sha256:null',
    attributes: 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda',
  },
  deviceKey: {
    file: 'device-key.json',
    algorithm: 'ecc256:ecdsa-sha256:null',
    attributes: 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|noda',
  },
};

const SRK_ALGORITHM = 'ecc256:aes128cfb';
const SRK_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda';

/** Stored in stateDir: enough to reload the key under a re-created SRK if its persistent handle is gone. */
interface KeyRecord {
  version: 1;
  handle: string;
  parent: string;
  public: string;
  private: string;
  name: string;
}

/**
 * The node agent's TPM operations, each one a short sequence of tpm2-tools 5.4 processes (execFile, no shell;
 * TPM2TOOLS_TCTI from `tcti`). Keys live at persistent handles so every operation works after a power cycle,
 * clean or not; their public/private blobs are also kept in `stateDir`, from which a key whose handle was
 * evicted is reloaded under a re-created SRK. Operations run one at a time, and any transient object or
 * session a failed step leaves behind is flushed: a raw TPM without a resource manager has only 3 slots.
 *
 * Authorization values assumed: empty owner and endorsement hierarchy auth (the state a TPM ships in and
 * swtpm_setup leaves); keys are created with empty auth and noda.
 */
export class Tpm2Tools {
  readonly handles: Readonly<TpmPersistentHandles>;
  private readonly tcti: string;
  private readonly stateDir: string;
  private readonly timeoutMs: number;
  private readonly keyGenerationTimeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  /** Keys whose persistent handle was checked against the stored record in this process. */
  private readonly verifiedKeys = new Set<KeyRole>();
  private readonly ekPublicCache = new Map<EkKind, Buffer>();

  constructor(options: Tpm2ToolsOptions) {
    this.tcti = options.tcti;
    this.stateDir = options.stateDir;
    this.handles = { ...DEFAULT_TPM_HANDLES, ...options.handles };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.keyGenerationTimeoutMs = options.keyGenerationTimeoutMs ?? 120_000;
  }

  /** The EK certificate (DER) the manufacturer stored in NV. */
  readEkCertificate(kind: EkKind): Promise<Buffer> {
    return this.exclusive(async (dir) => {
      const index = hex(EK_CERTIFICATE_NV_INDEX[kind]);
      let size: number;
      try {
        const { stdout } = await this.run('tpm2_nvreadpublic', [index]);
        const match = /^\s*size:\s*(\d+)/m.exec(stdout);
        if (!match) throw new TpmError('TOOL_FAILED', `tpm2_nvreadpublic ${index}: no size in output`);
        size = Number(match[1]);
      } catch (error) {
        if (error instanceof Tpm2ToolsError && /0x18B/i.test(error.stderr)) {
          throw new TpmError('EK_CERTIFICATE_MISSING', `no ${kind} EK certificate at NV index ${index}`);
        }
        throw error;
      }
      const file = join(dir, 'ek-cert.der');
      await this.run('tpm2_nvread', [index, '-s', String(size), '-o', file]);
      return trimDer(await readFile(file));
    });
  }

  /** TPM2B_PUBLIC of the EK certified at the `kind`'s NV index, persisted if it was not already. */
  ekPublic(kind: EkKind): Promise<Buffer> {
    return this.exclusive((dir) => this.ensureEk(kind, dir));
  }

  /** The attestation key: ECC P-256, restricted, ECDSA-SHA256, noda, under the SRK. Created once. */
  createAttestationKey(): Promise<TpmKey> {
    return this.exclusive((dir) => this.ensureKey('attestationKey', dir, true));
  }

  /** The device key: ECC P-256, unrestricted signing (ECDSA-SHA256), noda, under the SRK. Created once. */
  createDeviceKey(): Promise<TpmKey> {
    return this.exclusive((dir) => this.ensureKey('deviceKey', dir, true));
  }

  /**
   * TPM2_ActivateCredential: recovers the secret a verifier sealed to this TPM's `kind` EK and the AK's name.
   * `credentialBlob` is tpm2_makecredential's file (0xBADCC0DE header) or the bare TPM2B_ID_OBJECT ‖
   * TPM2B_ENCRYPTED_SECRET. Fails unless the blob was made for this EK and this AK.
   */
  activateCredential(credentialBlob: Buffer, kind: EkKind): Promise<Buffer> {
    return this.exclusive(async (dir) => {
      const ekPublic = await this.ensureEk(kind, dir);
      const blobFile = join(dir, 'credential.blob');
      await writeFile(blobFile, withCredentialBlobHeader(credentialBlob));
      const policy = ekPolicySteps(ekPublic);
      const ek = hex(this.handles[kind === 'rsa' ? 'ekRsa' : 'ekEcc']);
      return this.withKey('attestationKey', dir, async (ak) => {
        const session = join(dir, 'ek-policy.ctx');
        await this.run('tpm2_startauthsession', ['--policy-session', '-g', policy.hash, '-S', session]);
        try {
          await this.run('tpm2_policysecret', ['-S', session, '-c', 'e']);
          if (policy.orBranches) {
            const files = await Promise.all(
              policy.orBranches.map(async (digest, i) => {
                const f = join(dir, `ek-policy-branch-${i}.bin`);
                await writeFile(f, digest);
                return f;
              }),
            );
            await this.run('tpm2_policyor', ['-S', session, `${policy.hash}:${files.join(',')}`]);
          }
          const out = join(dir, 'secret.bin');
          await this.run('tpm2_activatecredential', [
            '-c',
            ak,
            '-C',
            ek,
            '-i',
            blobFile,
            '-o',
            out,
            '-P',
            `session:${session}`,
          ]);
          return await readFile(out);
        } finally {
          await this.run('tpm2_flushcontext', [session]).catch(() => undefined);
        }
      });
    });
  }

  /** TPM2_Certify of the device key by the AK: proof that the device key lives in the AK's TPM. */
  certifyDeviceKey(): Promise<{ attest: Buffer; signature: Buffer }> {
    return this.exclusive((dir) =>
      this.withKey('attestationKey', dir, (ak) =>
        this.withKey('deviceKey', dir, async (deviceKey) => {
          const attest = join(dir, 'certify.attest');
          const signature = join(dir, 'certify.sig');
          await this.run('tpm2_certify', [
            '-c',
            deviceKey,
            '-C',
            ak,
            '-g',
            'sha256',
            '-o',
            attest,
            '-s',
            signature,
          ]);
          return { attest: await readFile(attest), signature: await readFile(signature) };
        }),
      ),
    );
  }

  /** ECDSA P-256 over SHA-256(data) with the device key, as JOSE ES256 wants it: r ‖ s, 32 bytes each. */
  signWithDeviceKey(data: Buffer): Promise<Buffer> {
    return this.exclusive((dir) => this.signDigest(createHash('sha256').update(data).digest(), dir));
  }

  /** A compact JWS (ES256) signed by the device key inside the TPM. */
  async signJwt(header: Record<string, unknown>, payload: Record<string, unknown>): Promise<string> {
    const protectedHeader = { alg: 'ES256', ...header };
    if (protectedHeader.alg !== 'ES256') {
      throw new TpmError(
        'INVALID_ARGUMENT',
        `the device key signs ES256, not ${String(protectedHeader.alg)}`,
      );
    }
    const signingInput = `${base64url(JSON.stringify(protectedHeader))}.${base64url(JSON.stringify(payload))}`;
    const signature = await this.signWithDeviceKey(Buffer.from(signingInput, 'ascii'));
    return `${signingInput}.${signature.toString('base64url')}`;
  }

  /**
   * TPM2_Quote of the SHA-256 bank over `nonce` with the AK. The PCR values are read back after the quote; they
   * are returned only if their hash equals the quoted pcrDigest (a PCR extended in between causes a retry).
   */
  async quote(nonce: Buffer, pcrs: number[]): Promise<TpmQuote> {
    const selection = normalizePcrs(pcrs);
    return this.exclusive(async (dir) => {
      const nonceFile = join(dir, 'nonce.bin');
      await writeFile(nonceFile, nonce);
      const attestFile = join(dir, 'quote.attest');
      const signatureFile = join(dir, 'quote.sig');
      const valuesFile = join(dir, 'quote.pcrs');
      for (let attempt = 0; attempt < 3; attempt++) {
        await this.withKey('attestationKey', dir, (ak) =>
          this.run('tpm2_quote', [
            '-c',
            ak,
            '-l',
            `sha256:${selection.join(',')}`,
            ...(nonce.length > 0 ? ['-q', nonceFile] : []),
            '-g',
            'sha256',
            '-m',
            attestFile,
            '-s',
            signatureFile,
            '-o',
            valuesFile,
            '-F',
            'values',
          ]),
        );
        const attest = await readFile(attestFile);
        const values = await readFile(valuesFile);
        const parsed = parseTpmsAttest(attest);
        if (parsed.magic !== TPM_GENERATED_VALUE || !parsed.quote || !parsed.extraData.equals(nonce)) {
          throw new TpmError('QUOTE_INCONSISTENT', 'tpm2_quote produced an attestation for another request');
        }
        const quoted = parsed.quote.selection.filter((s) => s.pcrs.length > 0);
        if (
          quoted.length !== 1 ||
          quoted[0]!.hashAlg !== TPM_ALG.SHA256 ||
          quoted[0]!.pcrs.join(',') !== selection.join(',') ||
          values.length !== selection.length * 32
        ) {
          throw new TpmError('QUOTE_INCONSISTENT', 'tpm2_quote quoted another PCR selection than requested');
        }
        if (!createHash('sha256').update(values).digest().equals(parsed.quote.pcrDigest)) continue;
        return {
          attest,
          signature: await readFile(signatureFile),
          pcrValues: splitPcrValues(selection, values),
        };
      }
      throw new TpmError(
        'QUOTE_INCONSISTENT',
        'PCRs kept changing between the quote and reading their values',
      );
    });
  }

  /** Extends a SHA-256 digest into a PCR of the SHA-256 bank: p' = SHA-256(p ‖ digest). */
  async extendPcr(pcr: number, sha256Hex: string): Promise<void> {
    const [index] = normalizePcrs([pcr]);
    if (!/^[0-9a-f]{64}$/i.test(sha256Hex)) {
      throw new TpmError('INVALID_ARGUMENT', 'a PCR extend takes a SHA-256 digest as 64 hex characters');
    }
    return this.exclusive(async () => {
      await this.run('tpm2_pcrextend', [`${index}:sha256=${sha256Hex.toLowerCase()}`]);
    });
  }

  /** Current SHA-256 bank values, lowercase hex. */
  async readPcrs(pcrs: number[]): Promise<Record<number, string>> {
    const selection = normalizePcrs(pcrs);
    return this.exclusive(async (dir) => {
      const file = join(dir, 'pcrs.bin');
      await this.run('tpm2_pcrread', [`sha256:${selection.join(',')}`, '-o', file]);
      const values = await readFile(file);
      if (values.length !== selection.length * 32) {
        throw new TpmError(
          'TOOL_FAILED',
          `tpm2_pcrread returned ${values.length} bytes for ${selection.length} PCRs`,
        );
      }
      return splitPcrValues(selection, values);
    });
  }

  // --- internals -------------------------------------------------------------------------------------------

  private async signDigest(digest: Buffer, dir: string): Promise<Buffer> {
    const digestFile = join(dir, 'digest.bin');
    const signatureFile = join(dir, 'signature.tss');
    await writeFile(digestFile, digest);
    await this.withKey('deviceKey', dir, (key) =>
      // -d: the input is already a digest; allowed because the device key is not restricted (no ticket needed).
      this.run('tpm2_sign', ['-c', key, '-g', 'sha256', '-d', '-o', signatureFile, digestFile]),
    );
    return ecdsaSignatureToRawRs(parseTpmtSignatureEcdsa(await readFile(signatureFile)), 32);
  }

  private async ensureEk(kind: EkKind, dir: string): Promise<Buffer> {
    const cached = this.ekPublicCache.get(kind);
    if (cached) return cached;
    const handle = hex(this.handles[kind === 'rsa' ? 'ekRsa' : 'ekEcc']);
    let ekPublic = await this.readPersistentPublic(handle, dir);
    if (!ekPublic) {
      // The TCG default templates: RSA 2048 (low range) and, for `ecc384`, the high-range P-384 template H-3,
      // which is what swtpm (and TPMs following the EK Credential Profile) certify at 0x01c00016.
      const file = join(dir, 'ek.pub');
      await this.run('tpm2_createek', ['-G', kind === 'rsa' ? 'rsa' : 'ecc384', '-c', handle, '-u', file], {
        timeoutMs: this.keyGenerationTimeoutMs,
      });
      ekPublic = await readFile(file);
    }
    this.ekPublicCache.set(kind, ekPublic);
    return ekPublic;
  }

  private async ensureSrk(dir: string): Promise<string> {
    const handle = hex(this.handles.srk);
    if (await this.readPersistentPublic(handle, dir)) return handle;
    const ctx = join(dir, 'srk.ctx');
    await this.run(
      'tpm2_createprimary',
      ['-C', 'o', '-g', 'sha256', '-G', SRK_ALGORITHM, '-a', SRK_ATTRIBUTES, '-c', ctx],
      { timeoutMs: this.keyGenerationTimeoutMs },
    );
    try {
      await this.run('tpm2_evictcontrol', ['-C', 'o', '-c', ctx, handle]);
    } finally {
      await this.flushTransientObjects();
    }
    return handle;
  }

  /**
   * Makes sure the key of `role` is at its persistent handle and returns it. With a record in stateDir: the key
   * at the handle must be that key, or (handle empty) it is reloaded from the record. Without a record and with
   * `create`: a new key, replacing whatever an earlier installation left at the handle.
   */
  private async ensureKey(role: KeyRole, dir: string, create: boolean): Promise<TpmKey> {
    const template = KEY_TEMPLATES[role];
    const handle = hex(this.handles[role]);
    const recordFile = join(this.stateDir, template.file);
    const record = await readKeyRecord(recordFile);
    const present = await this.readPersistentPublic(handle, dir);
    if (record) {
      const key = { public: Buffer.from(record.public, 'base64'), name: Buffer.from(record.name, 'hex') };
      if (present?.equals(key.public)) {
        this.verifiedKeys.add(role);
        return key;
      }
      if (present) {
        throw new TpmError(
          'HANDLE_CONFLICT',
          `persistent handle ${handle} holds another key than the ${role} recorded in ${recordFile}`,
        );
      }
      try {
        await this.loadAndPersist(record, handle, dir);
      } catch (error) {
        throw new TpmError(
          'KEY_LOST',
          `the ${role} at ${handle} is gone and its blob in ${recordFile} no longer loads under the SRK ` +
            `(was the TPM cleared?): ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      this.verifiedKeys.add(role);
      return key;
    }
    if (!create) {
      throw new TpmError('KEY_NOT_CREATED', `no ${role} yet: create it first (${recordFile} does not exist)`);
    }
    if (present) await this.run('tpm2_evictcontrol', ['-C', 'o', '-c', handle]);
    const parent = await this.ensureSrk(dir);
    const pubFile = join(dir, 'key.pub');
    const privFile = join(dir, 'key.priv');
    await this.run(
      'tpm2_create',
      ['-C', parent, '-G', template.algorithm, '-a', template.attributes, '-u', pubFile, '-r', privFile],
      { timeoutMs: this.keyGenerationTimeoutMs },
    );
    const pub = await readFile(pubFile);
    const created: KeyRecord = {
      version: 1,
      handle,
      parent,
      public: pub.toString('base64'),
      private: (await readFile(privFile)).toString('base64'),
      name: tpmObjectName(parseTpm2bPublic(pub)).toString('hex'),
    };
    // Recorded before it is persisted: a crash in between leaves a record whose key is reloaded next time.
    await writeKeyRecord(this.stateDir, recordFile, created);
    await this.loadAndPersist(created, handle, dir);
    this.verifiedKeys.add(role);
    return { public: pub, name: Buffer.from(created.name, 'hex') };
  }

  private async loadAndPersist(record: KeyRecord, handle: string, dir: string): Promise<void> {
    const parent = await this.ensureSrk(dir);
    const pubFile = join(dir, 'load.pub');
    const privFile = join(dir, 'load.priv');
    const ctx = join(dir, 'load.ctx');
    await writeFile(pubFile, Buffer.from(record.public, 'base64'));
    await writeFile(privFile, Buffer.from(record.private, 'base64'));
    await this.run('tpm2_load', ['-C', parent, '-u', pubFile, '-r', privFile, '-c', ctx]);
    try {
      await this.run('tpm2_evictcontrol', ['-C', 'o', '-c', ctx, handle]);
    } finally {
      await this.flushTransientObjects();
    }
  }

  /**
   * tpm2_flushcontext cannot take a tpm2_load/tpm2_createprimary context file, and the transient handle is not
   * reported, so all transient objects go: on a raw TPM they are all ours (operations run one at a time), and
   * behind a resource manager there are none left after the tool exits.
   */
  private async flushTransientObjects(): Promise<void> {
    await this.run('tpm2_flushcontext', ['-t']);
  }

  /** Runs `use` with the key's handle; if the handle turned out empty, reloads the key from stateDir once. */
  private async withKey<T>(role: KeyRole, dir: string, use: (handle: string) => Promise<T>): Promise<T> {
    const handle = hex(this.handles[role]);
    if (!this.verifiedKeys.has(role)) await this.ensureKey(role, dir, false);
    try {
      return await use(handle);
    } catch (error) {
      if (!(error instanceof Tpm2ToolsError && error.handleMissing)) throw error;
      this.verifiedKeys.delete(role);
      await this.ensureKey(role, dir, false);
      return use(handle);
    }
  }

  private async readPersistentPublic(handle: string, dir: string): Promise<Buffer | undefined> {
    const file = join(dir, `public-${handle}.tss`);
    try {
      await this.run('tpm2_readpublic', ['-c', handle, '-f', 'tss', '-o', file]);
    } catch (error) {
      if (error instanceof Tpm2ToolsError && error.handleMissing) return undefined;
      throw error;
    }
    return readFile(file);
  }

  /** One operation at a time, in a private scratch directory; on failure, no object or session stays loaded. */
  private exclusive<T>(operation: (dir: string) => Promise<T>): Promise<T> {
    const result = this.queue.then(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'otter-tpm-'));
      try {
        return await operation(dir);
      } catch (error) {
        await this.flushEverything();
        throw error;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async flushEverything(): Promise<void> {
    for (const kind of ['-t', '-l', '-s']) await this.run('tpm2_flushcontext', [kind]).catch(() => undefined);
  }

  private run(
    tool: string,
    args: string[],
    options: { timeoutMs?: number } = {},
  ): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      execFile(
        tool,
        args,
        {
          env: { ...process.env, TPM2TOOLS_TCTI: this.tcti },
          timeout: options.timeoutMs ?? this.timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: 16 * 1024 * 1024,
          encoding: 'utf8',
        },
        (error, stdout, stderr) => {
          if (!error) return resolve({ stdout, stderr });
          const spawnFailure = typeof error.code === 'string' ? `${error.code}: ${error.message}\n` : '';
          reject(
            new Tpm2ToolsError(
              tool,
              args,
              `${spawnFailure}${stderr}`,
              typeof error.code === 'number' ? error.code : null,
              error.signal ?? null,
              error.killed === true && error.signal === 'SIGKILL',
            ),
          );
        },
      );
    });
  }
}

interface EkPolicySteps {
  hash: 'sha256' | 'sha384';
  /** After PolicySecret, a PolicyOR over these branch digests (high-range EK templates). */
  orBranches?: Buffer[];
}

/**
 * The policy session that satisfies the EK's authPolicy, recognised from the EK's public area: PolicyA
 * (low-range templates) is PolicySecret alone; PolicyB (high range) is PolicySecret then PolicyOR(A, C).
 */
function ekPolicySteps(ekPublic: Buffer): EkPolicySteps {
  const pub = parseTpm2bPublic(ekPublic);
  for (const hash of ['sha256', 'sha384'] as const) {
    const policy = ekPolicyDigests(hash);
    if (pub.authPolicy.equals(policy.a)) return { hash };
    if (pub.authPolicy.equals(policy.b)) return { hash, orBranches: [policy.a, policy.c] };
  }
  throw new TpmError(
    'UNSUPPORTED_EK_POLICY',
    `EK authPolicy ${pub.authPolicy.toString('hex')} is not a TCG EK policy this agent can satisfy`,
  );
}

async function readKeyRecord(file: string): Promise<KeyRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const record = JSON.parse(text) as KeyRecord;
  if (record.version !== 1 || !record.public || !record.private || !record.name) {
    throw new TpmError('KEY_LOST', `${file} is not a key record this agent wrote`);
  }
  return record;
}

async function writeKeyRecord(stateDir: string, file: string, record: KeyRecord): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const partial = `${file}.partial`;
  await writeFile(partial, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(partial, file);
}

function normalizePcrs(pcrs: number[]): number[] {
  if (pcrs.length === 0) throw new TpmError('INVALID_ARGUMENT', 'no PCRs selected');
  for (const p of pcrs) {
    if (!Number.isInteger(p) || p < 0 || p > 23) throw new TpmError('INVALID_ARGUMENT', `no PCR ${p}`);
  }
  // The TPM reports (and hashes) a selection in ascending PCR order, whatever order it was asked in.
  return [...new Set(pcrs)].sort((a, b) => a - b);
}

function splitPcrValues(selection: number[], values: Buffer): Record<number, string> {
  const out: Record<number, string> = {};
  selection.forEach((pcr, i) => (out[pcr] = values.subarray(i * 32, (i + 1) * 32).toString('hex')));
  return out;
}

/** NV areas are often larger than the certificate; keep exactly the DER SEQUENCE. */
function trimDer(data: Buffer): Buffer {
  if (data.length < 2 || data[0] !== 0x30) return data;
  const first = data[1]!;
  let length = first;
  let header = 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || data.length < 2 + n) return data;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + data[2 + i]!;
    header = 2 + n;
  }
  return header + length <= data.length ? data.subarray(0, header + length) : data;
}

function hex(handle: number): string {
  return `0x${handle.toString(16).padStart(8, '0')}`;
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
