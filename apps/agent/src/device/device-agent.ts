import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { DpopKey } from '#otter/api-client';
import {
  DEVICE_CERTIFICATE_EXPIRED,
  type ActivationResult,
  type DeviceReport,
  type IdentityResult,
  type VerdictDto,
} from '#otter/contracts';
import { Tpm2Tools, type EkKind } from '#otter/tpm';
import { parseTpm2bPublic, publicKeyObject } from '#otter/tpm-wire';
import { BOOTED_SLOT_PCR, SimulatedMeasuredBoot } from '../platform/measured-boot.js';
import { AgentError } from './agent-error.js';
import { DeviceApi, DeviceApiError } from './device-api.js';
import { describeCertificate, type DeviceCertificateInfo } from './device-certificate.js';
import { loadDeviceState, saveDeviceState, type DeviceState } from './device-state.js';

export interface EnrollOptions {
  server: string;
  tcti: string;
  stateDir: string;
  hardwareId: string;
  ekKind?: EkKind;
  runningVersion?: string;
}

export interface EnrollResult {
  nodeId: string;
  state: string;
  certificateNotAfter?: string;
}

const DEVICE_AUTH_AUDIENCE = 'otter:device-auth';

/**
 * The agent's side of enrollment, identity and attestation. All key material stays in the TPM; the state
 * directory holds only public data and tpm2-tools' key blobs.
 */
export class DeviceAgent {
  private renewing?: Promise<DeviceCertificateInfo>;
  private events: (event: Record<string, unknown>) => void = () => undefined;
  private deviceKey: DpopKey | undefined;

  private constructor(
    private readonly stateDir: string,
    private state: DeviceState,
    private readonly tpm: Tpm2Tools,
  ) {}

  static async open(stateDir: string): Promise<DeviceAgent> {
    const state = await loadDeviceState(stateDir);
    if (!state)
      throw new AgentError('NOT_ENROLLED', `no enrollment in ${stateDir}: run \`otter-agent enroll\` first`);
    return new DeviceAgent(
      stateDir,
      state,
      new Tpm2Tools({ tcti: state.tcti, stateDir: join(stateDir, 'tpm') }),
    );
  }

  /** Enrolls (once), then obtains the device identity as soon as the node is approved. Safe to re-run. */
  static async enroll(options: EnrollOptions): Promise<EnrollResult> {
    const existing = await loadDeviceState(options.stateDir);
    const state: DeviceState = existing ?? {
      server: options.server,
      tcti: options.tcti,
      hardwareId: options.hardwareId,
      ekKind: options.ekKind ?? 'ecc',
      runningVersion: options.runningVersion,
    };
    const agent = new DeviceAgent(
      options.stateDir,
      state,
      new Tpm2Tools({ tcti: state.tcti, stateDir: join(options.stateDir, 'tpm') }),
    );
    if (!state.nodeId) await agent.enrollWithTpm();
    if (!state.certificate) await agent.obtainIdentity();
    return {
      nodeId: agent.state.nodeId!,
      state: agent.state.state!,
      certificateNotAfter: agent.state.certificateNotAfter,
    };
  }

  private api(): DeviceApi {
    return new DeviceApi(this.state.server);
  }

  private async enrollWithTpm(): Promise<ActivationResult> {
    const kind = this.state.ekKind;
    const [ekCertificate, ekPublic, ak] = [
      await this.tpm.readEkCertificate(kind),
      await this.tpm.ekPublic(kind),
      await this.tpm.createAttestationKey(),
    ];
    const challenge = await this.api().startEnrollment({
      hardwareId: this.state.hardwareId,
      ekKind: kind,
      ekCertificate: ekCertificate.toString('base64'),
      ekPublic: ekPublic.toString('base64'),
      akPublic: ak.public.toString('base64'),
      runningVersion: this.state.runningVersion,
    });
    const secret = await this.tpm.activateCredential(Buffer.from(challenge.credentialBlob, 'base64'), kind);
    const quote = await this.tpm.quote(Buffer.from(challenge.nonce, 'hex'), challenge.pcrs);
    const result = await this.api().activate(challenge.enrollmentId, {
      secret: secret.toString('base64'),
      quote: {
        attest: quote.attest.toString('base64'),
        signature: quote.signature.toString('base64'),
        pcrValues: stringKeys(quote.pcrValues),
      },
    });
    this.state = { ...this.state, nodeId: result.nodeId, state: result.state };
    await saveDeviceState(this.stateDir, this.state);
    return result;
  }

  /** Certifies the TPM device key with the AK and gets its X.509 certificate, or learns why not yet (approval). */
  async obtainIdentity(): Promise<void> {
    try {
      await this.storeIdentity(await this.requestIdentity());
    } catch (e) {
      if (e instanceof DeviceApiError && e.code === 'NODE_NOT_ADMITTED') {
        const state = typeof e.details?.state === 'string' ? e.details.state : 'pending-approval';
        this.state = { ...this.state, state };
        await saveDeviceState(this.stateDir, this.state);
      } else {
        throw e;
      }
    }
  }

  /**
   * A new certificate by the same proof as the first (TPM2_Certify by the AK, a fresh assertion): before the
   * old one expires ('due'), or after it did ('expired': the node was off, or Otter refused the token). The
   * new certificate replaces the old one in device.json atomically, and only once Otter issued it; any
   * failure throws and leaves the old one in place. Concurrent calls share one renewal.
   */
  renewIdentity(reason: 'due' | 'expired'): Promise<DeviceCertificateInfo> {
    this.renewing ??= (async () => {
      const previous = this.certificate();
      const renewed = await this.storeIdentity(await this.requestIdentity());
      this.events({
        event: 'certificate-renewed',
        reason,
        serial: renewed.serialNumber,
        previousSerial: previous?.serialNumber,
        notAfter: renewed.notAfter,
      });
      return renewed;
    })().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /** The certificate this node holds, if it has one. */
  certificate(): DeviceCertificateInfo | undefined {
    return this.state.certificate ? describeCertificate(this.state.certificate) : undefined;
  }

  /** Where the agent tells what it did on its own (a certificate renewed on a refused token); the daemon logs it. */
  onEvent(listener: (event: Record<string, unknown>) => void): void {
    this.events = listener;
  }

  private async requestIdentity(): Promise<IdentityResult> {
    const nodeId = this.state.nodeId!;
    // Created once: later calls return the same TPM key, certified afresh.
    const device = await this.tpm.createDeviceKey();
    const certify = await this.tpm.certifyDeviceKey();
    return this.api().identity(nodeId, {
      devicePublic: device.public.toString('base64'),
      certifyAttest: certify.attest.toString('base64'),
      certifySignature: certify.signature.toString('base64'),
      assertion: await this.assertion(),
    });
  }

  private async storeIdentity(result: IdentityResult): Promise<DeviceCertificateInfo> {
    const info = describeCertificate(result.certificate);
    const next: DeviceState = {
      ...this.state,
      state: 'active',
      certificate: result.certificate,
      certificateNotAfter: result.notAfter,
    };
    await saveDeviceState(this.stateDir, next);
    this.state = next;
    return info;
  }

  /**
   * Quotes the PCRs Otter asks for over its fresh nonce; returns the verdict (passing or not). A passing
   * verdict for another version makes it the running version, unless `remember` is false (a trial boot,
   * which becomes the running version only when it is committed).
   */
  async attest(
    runningVersion?: string,
    { remember = true }: { remember?: boolean } = {},
  ): Promise<VerdictDto> {
    const version = runningVersion ?? this.state.runningVersion;
    const api = await this.authenticatedApi();
    const challenge = await api.challenge(version);
    const quote = await this.tpm.quote(Buffer.from(challenge.nonce, 'hex'), challenge.pcrs);
    try {
      const verdict = await api.attest({
        nonce: challenge.nonce,
        runningVersion: version,
        quote: {
          attest: quote.attest.toString('base64'),
          signature: quote.signature.toString('base64'),
          pcrValues: stringKeys(quote.pcrValues),
        },
      });
      if (remember && version) await this.rememberRunningVersion(version);
      return verdict;
    } catch (e) {
      if (e instanceof DeviceApiError && e.code === 'ATTESTATION_FAILED' && e.details?.verdict)
        return e.details.verdict as VerdictDto;
      throw e;
    }
  }

  /** The release this node runs, as it will tell Otter in its next attestations. */
  async rememberRunningVersion(version: string): Promise<void> {
    if (version === this.state.runningVersion) return;
    this.state = { ...this.state, runningVersion: version };
    await saveDeviceState(this.stateDir, this.state);
  }

  /** Sends a health or integrity report; returns it as sent. */
  async report(report: Omit<DeviceReport, 'at'>): Promise<DeviceReport> {
    const sent: DeviceReport = { ...report, at: new Date().toISOString() };
    await (await this.authenticatedApi()).report(sent);
    return sent;
  }

  /**
   * Measures the booted slot image into `pcr` of this node's TPM, as firmware would before the OS starts
   * (simulated: see SimulatedMeasuredBoot). Idempotent within one power cycle.
   */
  measureBootedSlot(
    slotImagePath: string,
    pcr: number = BOOTED_SLOT_PCR,
  ): Promise<{ pcr: number; digest: string }> {
    return new SimulatedMeasuredBoot(this.tpm, pcr).measureBootedSlot(slotImagePath);
  }

  get tpmTools(): Tpm2Tools {
    return this.tpm;
  }

  get nodeId(): string | undefined {
    return this.state.nodeId;
  }

  get hardwareId(): string {
    return this.state.hardwareId;
  }

  get server(): string {
    return this.state.server;
  }

  get tcti(): string {
    return this.state.tcti;
  }

  get runningVersion(): string | undefined {
    return this.state.runningVersion;
  }

  /**
   * The device API with a fresh access token (from a new TPM-signed assertion). The token is bound to the
   * device key: each request made with it carries a DPoP proof signed inside the TPM.
   */
  async authenticatedApi(): Promise<DeviceApi> {
    if (!this.state.certificate)
      throw new AgentError(
        'NO_IDENTITY',
        'this node has no identity yet: is it approved? re-run `otter-agent enroll`',
      );
    let accessToken: string;
    try {
      ({ accessToken } = await this.api().token(await this.assertion()));
    } catch (e) {
      if (!(e instanceof DeviceApiError && e.details?.reason === DEVICE_CERTIFICATE_EXPIRED)) throw e;
      // The certificate lapsed (the node was off past its expiry, or Otter's clock is ahead of ours): prove
      // the AK again, without an operator, and carry on. (A revoked node never gets this answer: Otter
      // refuses its token, and its identity, outright.)
      await this.renewIdentity('expired');
      ({ accessToken } = await this.api().token(await this.assertion()));
    }
    return this.api().withCredentials({ accessToken, key: await this.dpopKey() });
  }

  /** The TPM device key as DPoP signs with it: its public JWK, and ES256 signatures made in the TPM. */
  private async dpopKey(): Promise<DpopKey> {
    if (!this.deviceKey) {
      const device = await this.tpm.createDeviceKey();
      const tpm = this.tpm;
      this.deviceKey = {
        publicJwk: publicKeyObject(parseTpm2bPublic(device.public)).export({ format: 'jwk' }),
        sign: (data) => tpm.signWithDeviceKey(data),
      };
    }
    return this.deviceKey;
  }

  /** A single-use ES256 assertion signed inside the TPM with the device key. */
  private assertion(): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const nodeId = this.state.nodeId!;
    return this.tpm.signJwt(
      { alg: 'ES256', typ: 'JWT' },
      { iss: nodeId, sub: nodeId, aud: DEVICE_AUTH_AUDIENCE, iat: now, exp: now + 120, jti: randomUUID() },
    );
  }
}

function stringKeys(values: Record<number, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [String(k), v]));
}
