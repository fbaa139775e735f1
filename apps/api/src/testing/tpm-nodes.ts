import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IdentityRequest, NodeIdentityState, TpmQuote, VerdictDto } from '#otter/contracts';
import { testNodeRow, type Db } from '#otter/db';
import { DEVICE_AUTH_AUDIENCE } from '#otter/identity';
import { startSoftwareTpm, Tpm2Tools, type SoftwareTpm } from '#otter/tpm';
import type { DeviceCredentialsForTest } from './software-device-key.js';

/** The firmware/boot PCRs a default api pins (OTTER_PINNED_PCRS 0-7). */
const PINNED = [0, 1, 2, 3, 4, 5, 6, 7];

/**
 * Nodes backed by one real software TPM, written as rows that carry its AK (as enrollment would have left
 * them), for attack tests that need genuine quotes, certifies and device-key signatures many times over
 * without enrolling a TPM per node. The AK and device key are created once; every seeded node shares them.
 */
export class TpmNodes {
  private constructor(
    private readonly tpm: SoftwareTpm,
    readonly tools: Tpm2Tools,
    private readonly ak: Buffer,
    private readonly devicePublic: Buffer,
    private readonly certify: { attest: Buffer; signature: Buffer },
  ) {}

  static async start(): Promise<TpmNodes> {
    const tpm = await startSoftwareTpm();
    const tools = new Tpm2Tools({
      tcti: tpm.tcti,
      stateDir: mkdtempSync(join(tmpdir(), 'otter-tpm-nodes-')),
    });
    const ak = await tools.createAttestationKey();
    const device = await tools.createDeviceKey();
    // tpm2_certify takes no qualifying data: one certify of the device key serves every identity request.
    const certify = await tools.certifyDeviceKey();
    return new TpmNodes(tpm, tools, ak.public, device.public, certify);
  }

  /** A node row with this TPM's AK, its boot PCRs pinned to what the TPM holds now; returns its id. */
  async seed(
    db: Db,
    node: { state: NodeIdentityState; hardwareId?: string; runningVersion?: string | null },
  ): Promise<string> {
    const pinned = await this.tools.readPcrs(PINNED);
    const row = {
      ...testNodeRow({
        state: node.state,
        hardwareId: node.hardwareId,
        runningVersion: node.runningVersion ?? null,
        pinnedPcrs: Object.fromEntries(Object.entries(pinned)),
      }),
      ak_public: this.ak.toString('base64'),
    };
    await db.insertInto('nodes').values(row).execute();
    return row.id;
  }

  /** What `otter-agent enroll` sends for the node's identity: the certified device key and a fresh assertion. */
  async identityRequest(nodeId: string): Promise<IdentityRequest> {
    return {
      devicePublic: this.devicePublic.toString('base64'),
      certifyAttest: this.certify.attest.toString('base64'),
      certifySignature: this.certify.signature.toString('base64'),
      assertion: await this.assertion(nodeId),
    };
  }

  /** A single-use ES256 assertion for the node, signed inside the TPM by the device key. */
  assertion(nodeId: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return this.tools.signJwt(
      { typ: 'JWT' },
      { iss: nodeId, sub: nodeId, aud: DEVICE_AUTH_AUDIENCE, iat: now, exp: now + 120, jti: randomUUID() },
    );
  }

  /**
   * Asks for a challenge as the node (its bound access token and a DPoP proof per request), quotes `pcrs`
   * (default: the PCRs the challenge names) and sends the attestation; the status and the verdict (a refusal
   * carries it in its details).
   */
  async attest(
    apiUrl: string,
    device: Pick<DeviceCredentialsForTest, 'headers'>,
    body: { runningVersion?: string; pcrs?: number[] },
  ): Promise<{ status: number; verdict: VerdictDto | undefined; message: string }> {
    const headers = async (url: string): Promise<Record<string, string>> => ({
      ...(await device.headers('POST', url)),
      'content-type': 'application/json',
    });
    const challengeUrl = `${apiUrl}/api/v1/devices/me/attestation/challenge`;
    const challenge = await fetch(challengeUrl, {
      method: 'POST',
      headers: await headers(challengeUrl),
      body: JSON.stringify(body.runningVersion === undefined ? {} : { runningVersion: body.runningVersion }),
    });
    if (challenge.status !== 201) throw new Error(`challenge: ${challenge.status} ${await challenge.text()}`);
    const { nonce, pcrs } = (await challenge.json()) as { nonce: string; pcrs: number[] };
    const quote = await this.tools.quote(Buffer.from(nonce, 'hex'), body.pcrs ?? pcrs);
    const request: { nonce: string; quote: TpmQuote; runningVersion?: string } = {
      nonce,
      quote: {
        attest: quote.attest.toString('base64'),
        signature: quote.signature.toString('base64'),
        pcrValues: Object.fromEntries(Object.entries(quote.pcrValues).map(([k, v]) => [String(k), v])),
      },
      ...(body.runningVersion !== undefined && { runningVersion: body.runningVersion }),
    };
    const attestationUrl = `${apiUrl}/api/v1/devices/me/attestation`;
    const res = await fetch(attestationUrl, {
      method: 'POST',
      headers: await headers(attestationUrl),
      body: JSON.stringify(request),
    });
    const answer = (await res.json()) as VerdictDto & {
      message?: string;
      details?: { verdict?: VerdictDto };
    };
    return {
      status: res.status,
      verdict: res.status === 200 ? answer : answer.details?.verdict,
      message: answer.message ?? answer.reason,
    };
  }

  stop(): Promise<void> {
    return this.tpm.stop();
  }
}
