import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import type { Redis } from 'ioredis';
import { jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { OtterError } from '#otter/errors';
import {
  ACCESS_TOKEN_ISSUER,
  DEVICE_API_AUDIENCE,
  DEVICE_AUTH_AUDIENCE,
  isNodeId,
} from './identity-names.js';
import { DpopProofVerifier, isJwkThumbprint, type DpopRequest } from './dpop-proof.js';
import { DpopReplayCache } from './dpop-replay-cache.js';
import { isP256PublicKey } from './p256.js';
import type { TokenSigningKey } from './token-signing-key.js';

/** RFC 9068 media type of our access tokens: a device assertion (a plain JWT) can never pass for one. */
const ACCESS_TOKEN_TYP = 'at+jwt';
/** A compact ES256 JWS with our claims is a few hundred characters; refuse big input before parsing it. */
const MAX_JWT_CHARS = 4096;
/** Verified access tokens one process remembers (~100 bytes each); the oldest go first. */
const VERIFIED_TOKENS_HELD = 100_000;
/** Printable ASCII, no spaces: a jti is an opaque id, and this keeps Redis keys readable. */
const JTI_PATTERN = /^[\x21-\x7e]{1,128}$/;

export interface DeviceTokenServiceOptions {
  /** Signs and verifies access tokens (loadOrCreateTokenSigningKey). */
  signingKey: TokenSigningKey;
  /** `aud` a device assertion must carry; default `otter:device-auth`. */
  deviceAuthAudience?: string;
  /** `aud` of issued access tokens; default `otter:device-api`. */
  accessTokenAudience?: string;
  /** Tolerated clock difference with a node, both ways, for device assertions; default 60 s. */
  clockSkewSeconds?: number;
  /** Longest accepted device assertion, exp - iat; default 300 s. */
  maxAssertionLifetimeSeconds?: number;
  /** Lifetime of issued access tokens; default 600 s. */
  accessTokenLifetimeSeconds?: number;
  /** Prefix of every Redis key this service writes; default `otter:`. */
  keyPrefix?: string;
  /** The clock; tests move it. */
  now?: () => Date;
}

export interface DeviceIdentityClaim {
  nodeId: string;
  /** The node's TPM device key, from its verified identity (database or device certificate). */
  devicePublicKey: KeyObject;
}

export interface VerifiedDeviceAssertion {
  nodeId: string;
  jti: string;
  issuedAt: Date;
  expiresAt: Date;
}

export interface IssuedAccessToken {
  token: string;
  expiresAt: Date;
}

/** What a verified access token says: its node, and the thumbprint of the device key it is bound to. */
export interface AccessTokenClaims {
  nodeId: string;
  /** `cnf.jkt` (RFC 9449): only DPoP proofs signed by this key make the token usable. */
  jkt: string;
}

/** An access token this process verified, and when it expires. */
interface VerifiedToken extends AccessTokenClaims {
  expiresAtMs: number;
}

/**
 * Device authentication for the device API. A node proves possession of its TPM device key with a short-lived,
 * single-use ES256 assertion; in exchange Otter issues an ES256 access token signed with its own key, bound to
 * that device key (`cnf.jkt`). The token is reusable until it expires, so it is never enough alone: every
 * request must also carry a DPoP proof (RFC 9449) signed by the device key (verifyBoundRequest).
 *
 * Every refusal is OtterError('UNAUTHENTICATED') with the same message per kind of token and a short reason
 * code in `details.reason` (the exception filter sends details to the client: the reason names only what the
 * presenter of the token already knows about it). Tokens and keys are never logged.
 */
export class DeviceTokenService {
  private readonly deviceAuthAudience: string;
  private readonly accessTokenAudience: string;
  private readonly skew: number;
  private readonly maxAssertionLifetime: number;
  private readonly accessTokenLifetime: number;
  private readonly keyPrefix: string;
  private readonly now: () => Date;
  /** Access tokens verified by this process: sha256(token) → node, key binding and expiry, oldest first. */
  private readonly verified = new Map<string, VerifiedToken>();
  /** DPoP proofs, and per bound connection its keys and the token last proven on it (see verifyBoundRequest). */
  private readonly proofs: DpopProofVerifier<VerifiedToken>;
  /** Nodes revoked through this process: refused at once even by paths that hold answers for a moment. */
  private readonly revokedHere = new Set<string>();

  constructor(
    private readonly redis: Redis,
    private readonly options: DeviceTokenServiceOptions,
  ) {
    this.deviceAuthAudience = options.deviceAuthAudience ?? DEVICE_AUTH_AUDIENCE;
    this.accessTokenAudience = options.accessTokenAudience ?? DEVICE_API_AUDIENCE;
    this.skew = options.clockSkewSeconds ?? 60;
    this.maxAssertionLifetime = options.maxAssertionLifetimeSeconds ?? 300;
    this.accessTokenLifetime = options.accessTokenLifetimeSeconds ?? 600;
    this.keyPrefix = options.keyPrefix ?? 'otter:';
    this.now = options.now ?? (() => new Date());
    if (this.deviceAuthAudience === this.accessTokenAudience) {
      throw new Error('device assertions and access tokens need different audiences');
    }
    const replays = new DpopReplayCache(redis, this.keyPrefix);
    this.proofs = new DpopProofVerifier<VerifiedToken>({
      consumeJti: (jkt, jti, ttl) => replays.consume(jkt, jti, ttl),
      clockSkewSeconds: this.skew,
      now: this.now,
    });
  }

  /**
   * Checks a device assertion: ES256 only, signed by this node's device key, iss = sub = nodeId, aud = the
   * device-auth audience, iat not in the future and exp not past (each with the clock skew), exp - iat within
   * the maximum lifetime, and a jti never seen before for this node. The jti is consumed only after every
   * other check passed, so a forger cannot burn a node's jtis.
   */
  async verifyDeviceAssertion(jwt: string, device: DeviceIdentityClaim): Promise<VerifiedDeviceAssertion> {
    const { nodeId, devicePublicKey } = device;
    if (!isNodeId(nodeId)) throw assertionRejected('invalid_node_id');
    if (!isP256PublicKey(devicePublicKey)) throw assertionRejected('unsupported_device_key');
    if (typeof jwt !== 'string' || jwt.length > MAX_JWT_CHARS) throw assertionRejected('malformed');
    const now = this.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jwt, devicePublicKey, {
        // The one allowed algorithm: `none`, HMAC with the public key as secret, RSA... are refused before any
        // key is used.
        algorithms: ['ES256'],
        audience: this.deviceAuthAudience,
        issuer: nodeId,
        subject: nodeId,
        requiredClaims: ['iat', 'exp', 'jti'],
        clockTolerance: this.skew,
        currentDate: now,
      }));
    } catch (e) {
      throw assertionRejected(joseReason(e));
    }
    // jose checked presence and that iat/exp are numbers; the rest is ours.
    const iat = payload.iat as number;
    const exp = payload.exp as number;
    const nowSeconds = Math.floor(now.getTime() / 1000);
    if (Array.isArray(payload.aud) && payload.aud.length !== 1) throw assertionRejected('invalid_aud');
    if (iat > nowSeconds + this.skew) throw assertionRejected('issued_in_future');
    if (exp <= iat) throw assertionRejected('invalid_exp');
    if (exp - iat > this.maxAssertionLifetime) throw assertionRejected('lifetime_too_long');
    const jti = payload.jti;
    if (typeof jti !== 'string' || !JTI_PATTERN.test(jti)) throw assertionRejected('invalid_jti');
    // Remembered for as long as the assertion could still pass the exp check, then Redis forgets it.
    // NumericDate may have a fraction; EX takes whole seconds, so round up.
    const ttl = Math.max(1, Math.ceil(exp + this.skew - nowSeconds));
    const first = await this.redis.set(`${this.keyPrefix}jti:${nodeId}:${jti}`, '1', 'EX', ttl, 'NX');
    if (first !== 'OK') throw assertionRejected('jti_reused');
    return { nodeId, jti, issuedAt: new Date(iat * 1000), expiresAt: new Date(exp * 1000) };
  }

  /** An access token for `nodeId`, bound to the device key whose RFC 7638 thumbprint is `jkt`. */
  async issueAccessToken(nodeId: string, jkt: string): Promise<IssuedAccessToken> {
    if (!isNodeId(nodeId)) throw new OtterError('VALIDATION_FAILED', 'invalid node id', { nodeId });
    if (!isJwkThumbprint(jkt)) throw new OtterError('VALIDATION_FAILED', 'invalid key thumbprint', { jkt });
    const iat = Math.floor(this.now().getTime() / 1000);
    const exp = iat + this.accessTokenLifetime;
    const token = await new SignJWT({ cnf: { jkt } })
      .setProtectedHeader({ alg: 'ES256', typ: ACCESS_TOKEN_TYP, kid: this.options.signingKey.kid })
      .setIssuer(ACCESS_TOKEN_ISSUER)
      .setSubject(nodeId)
      .setAudience(this.accessTokenAudience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(this.options.signingKey.privateKey);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  /**
   * The node a device request speaks for and the key it proved: a valid access token (verifyAccessToken)
   * presented with a valid DPoP proof by the device key it is bound to. Not checked here: whether the node is
   * still allowed, and whether that key is still the node's (the caller compares `jkt` with the node's row).
   */
  async verifyBoundRequest(token: string, request: DpopRequest): Promise<AccessTokenClaims> {
    const { connection } = request;
    // The token last proven on this bound connection: the same token again skips even hashing it to find it in
    // `verified`. The proof is still checked (against the key the connection proved).
    const known = connection && this.proofs.tokenOn(connection, token);
    if (known && this.now().getTime() < known.expiresAtMs) {
      await this.proofs.verify(request, token, known.jkt);
      return { nodeId: known.nodeId, jkt: known.jkt };
    }
    const claims = await this.verifiedToken(token);
    await this.proofs.verify(request, token, claims.jkt);
    if (connection) this.proofs.rememberToken(connection, token, claims);
    return { nodeId: claims.nodeId, jkt: claims.jkt };
  }

  /**
   * The claims of a valid access token: ES256, signed by Otter's key, typ at+jwt, aud = the device-API
   * audience, not expired, bound to a device key. The token alone proves nothing about its presenter: use
   * verifyBoundRequest. Not checked here: whether the node is still allowed — the caller reads the node's
   * state in the database (authoritative) and may consult isRevoked() first.
   */
  async verifyAccessToken(token: string): Promise<AccessTokenClaims> {
    const { nodeId, jkt } = await this.verifiedToken(token);
    return { nodeId, jkt };
  }

  /** verifyAccessToken, with the token's expiry. */
  private async verifiedToken(token: string): Promise<VerifiedToken> {
    if (typeof token !== 'string' || token.length > MAX_JWT_CHARS) throw accessTokenRejected('malformed');
    // A token this process verified before needs no second signature check (the costliest part of a device
    // poll); only its expiry can change its answer. Keyed by the token's hash, so a forged token never hits.
    const key = createHash('sha256').update(token).digest('base64');
    const known = this.verified.get(key);
    if (known) {
      if (this.now().getTime() >= known.expiresAtMs) {
        this.verified.delete(key);
        throw accessTokenRejected('expired');
      }
      return known;
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.options.signingKey.publicKey, {
        algorithms: ['ES256'],
        typ: ACCESS_TOKEN_TYP,
        audience: this.accessTokenAudience,
        issuer: ACCESS_TOKEN_ISSUER,
        requiredClaims: ['sub', 'iat', 'exp', 'jti'],
        // Our own tokens, checked by replicas that keep server time: no tolerance past exp.
        clockTolerance: 0,
        currentDate: this.now(),
      }));
    } catch (e) {
      throw accessTokenRejected(joseReason(e));
    }
    if (!isNodeId(payload.sub)) throw accessTokenRejected('invalid_sub');
    const jkt = (payload.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (!isJwkThumbprint(jkt)) throw accessTokenRejected('not_bound');
    if (this.verified.size >= VERIFIED_TOKENS_HELD) this.verified.delete(this.verified.keys().next().value!);
    const verified = { nodeId: payload.sub, jkt, expiresAtMs: payload.exp! * 1000 };
    this.verified.set(key, verified);
    return verified;
  }

  /**
   * Marks a node revoked in Redis so every api replica refuses it at once, before any database read. The
   * database state of the node stays authoritative: revoke there too; this set is a fast path, not the record.
   */
  async revokeNode(nodeId: string): Promise<void> {
    this.revokedHere.add(nodeId);
    await this.redis.sadd(this.revokedNodesKey, nodeId);
  }

  /** Undoes revokeNode (a node re-approved by an operator). */
  async reinstateNode(nodeId: string): Promise<void> {
    await this.redis.srem(this.revokedNodesKey, nodeId);
    this.revokedHere.delete(nodeId);
  }

  async isRevoked(nodeId: string): Promise<boolean> {
    return (await this.redis.sismember(this.revokedNodesKey, nodeId)) === 1;
  }

  /** Whether this process revoked the node: a check with no I/O, for answers held between reads. */
  isRevokedHere(nodeId: string): boolean {
    return this.revokedHere.has(nodeId);
  }

  /** Of these nodes, the revoked ones, in one Redis call. */
  async revokedAmong(nodeIds: readonly string[]): Promise<Set<string>> {
    if (nodeIds.length === 0) return new Set();
    const member = await this.redis.smismember(this.revokedNodesKey, ...nodeIds);
    return new Set(nodeIds.filter((_, i) => member[i] === 1));
  }

  private get revokedNodesKey(): string {
    return `${this.keyPrefix}revoked-nodes`;
  }
}

function assertionRejected(reason: string): OtterError {
  return new OtterError('UNAUTHENTICATED', 'device assertion rejected', { reason });
}

function accessTokenRejected(reason: string): OtterError {
  return new OtterError('UNAUTHENTICATED', 'invalid access token', { reason });
}

/** jose's error codes, as short reasons; anything else counts as malformed. */
function joseReason(e: unknown): string {
  const { code, claim } = e as { code?: unknown; claim?: unknown };
  switch (code) {
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'alg_not_allowed';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad_signature';
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return typeof claim === 'string' ? `invalid_${claim}` : 'invalid_claims';
    default:
      return 'malformed';
  }
}
