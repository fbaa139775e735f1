import { Inject, Injectable, Logger } from '@nestjs/common';
import { decodeJwt } from 'jose';
import { checkDeviceKey, parseTpm2bPublic, publicKeyObject, verifyCertify } from '#otter/attestation';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import {
  DEVICE_CERTIFICATE_EXPIRED,
  type AccessTokenDto,
  type IdentityRequest,
  type IdentityResult,
} from '#otter/contracts';
import {
  DeviceCertificateAuthority,
  DeviceTokenService,
  isNodeId,
  type AccessTokenClaims,
  type DpopRequest,
} from '#otter/identity';
import { deviceKeyThumbprint } from './device-key-thumbprint.js';
import { NodeError } from './node.errors.js';
import { NodeSightings } from './node-sightings.js';
import { NodeRepository, type NodeRecord } from './node.repository.js';
import { NODE_TRANSITIONS } from './node-transitions.js';

/**
 * A node's identity: a TPM-resident signing key, certified by its trusted AK (TPM2_Certify) and proven in use
 * by a fresh assertion signed with it, gets an X.509 certificate from Otter's device CA. Renewal repeats the
 * same proof. The device then trades short-lived TPM-signed assertions for access tokens.
 */
@Injectable()
export class DeviceIdentityService {
  private readonly logger = new Logger(DeviceIdentityService.name);

  constructor(
    private readonly nodes: NodeRepository,
    private readonly ca: DeviceCertificateAuthority,
    private readonly tokens: DeviceTokenService,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
    private readonly sightings: NodeSightings,
  ) {}

  async issueIdentity(nodeId: string, request: IdentityRequest): Promise<IdentityResult> {
    const node = await this.admittedNode(nodeId);
    const devicePublicBytes = Buffer.from(request.devicePublic, 'base64');
    const devicePublic = parseTpm2bPublic(devicePublicBytes);
    checkDeviceKey(devicePublic);
    verifyCertify({
      akPublic: parseTpm2bPublic(node.akPublic),
      attest: Buffer.from(request.certifyAttest, 'base64'),
      signature: Buffer.from(request.certifySignature, 'base64'),
      certifiedPublic: devicePublic,
    });
    const publicKey = publicKeyObject(devicePublic);
    // tpm2_certify carries no qualifying data, so the certify alone could be replayed: the assertion signed
    // with the certified key right now is what makes this request fresh.
    await this.tokens.verifyDeviceAssertion(request.assertion, { nodeId, devicePublicKey: publicKey });
    const cert = await this.ca.issue({
      nodeId,
      hardwareId: node.hardwareId,
      publicKey,
      lifetimeSeconds: this.config.devices.certificateTtl,
    });
    // Compare-and-set: a revoke (or anything else) that changed the node since it was read above wins, and the
    // certificate just signed is never handed out.
    const activated = await this.nodes.transition(nodeId, NODE_TRANSITIONS.activate, {
      devicePublic: devicePublicBytes,
      deviceCertSerial: cert.serialNumber,
      deviceCertNotAfter: cert.notAfter.toISOString(),
    });
    if (!activated) {
      const now = await this.nodes.get(nodeId);
      this.logger.warn({ node: nodeId, state: now?.state }, 'identity refused: the node changed meanwhile');
      throw notAdmitted(now?.state ?? 'unknown');
    }
    const previousNotAfter = node.deviceCertNotAfter ? Date.parse(node.deviceCertNotAfter) : undefined;
    this.logger.log(
      {
        node: nodeId,
        serial: cert.serialNumber,
        notAfter: cert.notAfter.toISOString(),
        caGeneration: cert.caGeneration,
        ...(previousNotAfter !== undefined && {
          previousSerial: node.deviceCertSerial,
          previousLapsed: previousNotAfter < Date.now(),
        }),
      },
      previousNotAfter === undefined ? 'device certificate issued' : 'device certificate renewed',
    );
    return { nodeId, certificate: cert.pem, notAfter: cert.notAfter.toISOString() };
  }

  async exchangeAssertion(assertion: string): Promise<AccessTokenDto> {
    let nodeId: unknown;
    try {
      nodeId = decodeJwt(assertion).iss;
    } catch {
      throw new NodeError('UNAUTHENTICATED', 'malformed device assertion');
    }
    if (typeof nodeId !== 'string' || !isNodeId(nodeId))
      throw new NodeError('UNAUTHENTICATED', 'unknown node');
    const node = await this.nodes.get(nodeId);
    if (!node || node.state !== 'active' || !node.devicePublic)
      throw new NodeError('UNAUTHENTICATED', 'unknown node');
    if (node.deviceCertNotAfter && Date.parse(node.deviceCertNotAfter) < Date.now()) {
      throw new NodeError('UNAUTHENTICATED', 'the device certificate expired: renew the identity', {
        reason: DEVICE_CERTIFICATE_EXPIRED,
      });
    }
    const devicePublicKey = publicKeyObject(parseTpm2bPublic(node.devicePublic));
    await this.tokens.verifyDeviceAssertion(assertion, { nodeId, devicePublicKey });
    // The assertion just proved possession of the device key: the token is bound to that key (RFC 9449 cnf.jkt),
    // so every request made with it must carry a DPoP proof signed inside the node's TPM.
    const issued = await this.tokens.issueAccessToken(nodeId, deviceKeyThumbprint(node.devicePublic));
    return { accessToken: issued.token, expiresAt: issued.expiresAt.toISOString() };
  }

  /**
   * The node a device request speaks for and the key its proof was signed with, checking only its access token
   * (cached per process after its first verification) and DPoP proof: with allowedAmong(), for paths that
   * confirm many nodes' standing in one read.
   */
  tokenNode(accessToken: string, request: DpopRequest): Promise<AccessTokenClaims> {
    return this.tokens.verifyBoundRequest(accessToken, request);
  }

  /** Whether the node was revoked through this process: known at once, with no I/O. */
  revokedHere(nodeId: string): boolean {
    return this.tokens.isRevokedHere(nodeId);
  }

  /**
   * Of these nodes, those authenticate() would let through now (active and not revoked), each with the
   * thumbprint of its current device key: a request is theirs only when its token is bound to that key.
   */
  async allowedAmong(nodeIds: readonly string[]): Promise<Map<string, string>> {
    const [revoked, active] = await Promise.all([
      this.tokens.revokedAmong(nodeIds),
      this.nodes.activeDeviceKeysAmong(nodeIds),
    ]);
    const allowed = new Map<string, string>();
    for (const [id, devicePublic] of active) {
      if (!revoked.has(id)) allowed.set(id, deviceKeyThumbprint(devicePublic));
    }
    return allowed;
  }

  /**
   * The node a device request speaks for (its access token and the DPoP proof that must come with it), refused
   * if revoked, no longer active, or holding another device key than the one the token is bound to.
   */
  /** The node of an authenticated device request; marks it seen (its last-seen time, to about five minutes). */
  async authenticate(accessToken: string, request: DpopRequest): Promise<NodeRecord> {
    const node = await this.allowedNode(await this.tokens.verifyBoundRequest(accessToken, request));
    await this.sightings.seen(node.id);
    return node;
  }

  /**
   * The node of a request already authenticated by tokenNode() (whose proof is spent), refused if revoked, no
   * longer active, or if its device key changed since the token was issued: a re-enrolled board, or an identity
   * renewed with a new key, leaves every token bound to the old key useless at once, not when it expires.
   */
  async allowedNode({ nodeId, jkt }: AccessTokenClaims): Promise<NodeRecord> {
    if (await this.tokens.isRevoked(nodeId)) throw new NodeError('UNAUTHENTICATED', 'node revoked');
    const node = await this.nodes.get(nodeId);
    if (!node || node.state !== 'active') throw new NodeError('UNAUTHENTICATED', 'node not active');
    if (!node.devicePublic || deviceKeyThumbprint(node.devicePublic) !== jkt) throw deviceKeyReplaced();
    return node;
  }

  /** The node, if it may get an identity now: in a source state of `activate` and not in the revoked set. */
  private async admittedNode(nodeId: string): Promise<NodeRecord> {
    const node = await this.nodes.get(nodeId);
    if (!node) throw new NodeError('NODE_NOT_FOUND', 'no such node');
    if (!(NODE_TRANSITIONS.activate.from as readonly string[]).includes(node.state))
      throw notAdmitted(node.state);
    // A revoke writes the Redis set before the database: refuse what it already names.
    if (await this.tokens.isRevoked(nodeId)) throw notAdmitted('revoked');
    return node;
  }
}

/** 401 for a token bound to a device key the node no longer holds. */
export function deviceKeyReplaced(): NodeError {
  return new NodeError(
    'UNAUTHENTICATED',
    "the token is bound to a device key that is no longer this node's",
    {
      reason: 'device_key_replaced',
    },
  );
}

function notAdmitted(state: string): NodeError {
  const message = `node is ${state}; it needs approval before it gets an identity`;
  return new NodeError('NODE_NOT_ADMITTED', message, { state });
}
