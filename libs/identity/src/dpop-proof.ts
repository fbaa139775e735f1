import { createHash, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { accessTokenHash, DPOP_PROOF_TYP } from '#otter/contracts';
import { OtterError } from '#otter/errors';
/** A proof is a compact ES256 JWS with a P-256 JWK in its header: well under 1 KiB. */
const MAX_PROOF_CHARS = 2048;
/** Printable ASCII, no spaces, as for assertion jtis: it ends up in a Redis key. */
const JTI_PATTERN = /^[\x21-\x7e]{1,128}$/;
/** base64url SHA-256: a JWK thumbprint (RFC 7638) and `ath` are 43 characters. */
const SHA256_B64URL = /^[A-Za-z0-9_-]{43}$/;
/** Proof headers (one per device key, identical in every proof it signs) whose key this process imported. */
const HEADERS_HELD = 100_000;
/** Keys one connection may be bound to: one per agent, more for a gateway (each needs a proof that passed). */
const KEYS_PER_CONNECTION = 1024;

/** What a request says about itself, to check a DPoP proof against. */
export interface DpopRequest {
  /** The `DPoP` header as received (undefined when absent). */
  proof: string | undefined;
  /** HTTP method, upper case. */
  method: string;
  /** The request's URL as the client addressed it (the public base URL and the path, no query). */
  url: string;
  /**
   * The connection the request came on, when that connection is the client's own (connection binding on, and
   * no proxy in between): a connection that proved possession of a key once is bound to it (see verify).
   */
  connection?: object;
}

export interface DpopProofVerifierOptions {
  /**
   * Records a proof's jti for `ttlSeconds`; resolves false when this key's jti was seen before (a replay). Called
   * only for proofs that passed every other check, so a forger cannot burn a node's jtis.
   */
  consumeJti: (jkt: string, jti: string, ttlSeconds: number) => Promise<boolean>;
  /** How far a proof's `iat` may lie in the past or the future: the node's clock against ours. Default 60 s. */
  clockSkewSeconds?: number;
  now?: () => Date;
}

interface ProofKey {
  jkt: string;
  key: KeyObject;
}

/**
 * All one client connection proved (DPoP per connection), in one place, dropped with the connection: the keys a
 * verified proof showed it holds (thumbprint → the proof header that key sends), and the access token last
 * presented on it with what its verification said (`T`, the caller's), so the same token again is neither
 * hashed nor looked up.
 */
interface BoundConnection<T> {
  keys: Map<string, string>;
  token?: { value: string; claims: T };
}

/**
 * RFC 9449 (DPoP) proofs, server side: a JWS with `typ` dpop+jwt, ES256, the signer's public JWK in the
 * header, and claims jti, htm, htu, iat and ath (the hash of the access token presented with it). A proof is
 * accepted when it is signed by the key the access token is bound to (`cnf.jkt`), names this request's method
 * and URL, is recent, covers this token, and its jti was never used with that key.
 *
 * Cost: a request pays one ECDSA P-256 verification (the floor) plus parsing; the key's import and thumbprint
 * are done once per device key (cached by the header's bytes, which a client repeats verbatim).
 */
export class DpopProofVerifier<T = never> {
  private readonly skew: number;
  private readonly now: () => Date;
  private readonly keys = new Map<string, ProofKey>();
  /** Connections that proved possession of keys, each with the token last presented on it. */
  private readonly bound = new WeakMap<object, BoundConnection<T>>();

  constructor(private readonly options: DpopProofVerifierOptions) {
    this.skew = options.clockSkewSeconds ?? 60;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Resolves when `request` carries a valid proof by the key `jkt` for `accessToken`; throws 401 otherwise.
   *
   * With `request.connection`, a connection on which a proof by `jkt` was verified is bound to that key, as a
   * mutual-TLS connection is bound to its client certificate: later requests on it with a token bound to the
   * same key need a proof from that key's header but no second signature check or jti (nobody else can send
   * on the connection). Only sound when the connection is the client's own: never behind a proxy that pools
   * connections, which is why the api passes `connection` only when told to and no proxy headers are present.
   */
  async verify(request: DpopRequest, accessToken: string, jkt: string): Promise<void> {
    const { proof, connection } = request;
    if (proof === undefined || proof === '') throw proofRejected('dpop_proof_missing');
    if (typeof proof !== 'string' || proof.length > MAX_PROOF_CHARS) throw proofRejected('dpop_malformed');
    const boundHeader = connection && this.bound.get(connection)?.keys.get(jkt);
    if (
      boundHeader !== undefined &&
      proof.startsWith(boundHeader) &&
      proof.charCodeAt(boundHeader.length) === 46
    ) {
      return;
    }
    const parts = proof.split('.');
    if (parts.length !== 3) throw proofRejected('dpop_malformed');
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const signer = this.proofKey(headerPart);
    if (signer.jkt !== jkt) throw proofRejected('dpop_key_mismatch');
    const signature = Buffer.from(signaturePart, 'base64url');
    if (signature.length !== 64) throw proofRejected('dpop_bad_signature');
    const signed = verify(
      'sha256',
      Buffer.from(`${headerPart}.${payloadPart}`, 'ascii'),
      { key: signer.key, dsaEncoding: 'ieee-p1363' },
      signature,
    );
    if (!signed) throw proofRejected('dpop_bad_signature');

    const claims = parseJson(payloadPart);
    if (!claims) throw proofRejected('dpop_malformed');
    const { jti, htm, htu, iat, ath } = claims;
    if (typeof jti !== 'string' || !JTI_PATTERN.test(jti)) throw proofRejected('dpop_invalid_jti');
    if (htm !== request.method) throw proofRejected('dpop_htm_mismatch');
    if (typeof htu !== 'string' || !sameTarget(htu, request.url)) throw proofRejected('dpop_htu_mismatch');
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw proofRejected('dpop_invalid_iat');
    const nowSeconds = this.now().getTime() / 1000;
    if (iat > nowSeconds + this.skew) throw proofRejected('dpop_issued_in_future');
    if (iat < nowSeconds - this.skew) throw proofRejected('dpop_proof_expired');
    if (typeof ath !== 'string' || ath !== accessTokenHash(accessToken))
      throw proofRejected('dpop_ath_mismatch');
    // Kept as long as the proof could still pass the iat check, then forgotten.
    const ttl = Math.max(1, Math.ceil(iat + this.skew - nowSeconds));
    if (!(await this.options.consumeJti(jkt, jti, ttl))) throw proofRejected('dpop_jti_reused');
    if (connection) this.bindConnection(connection, jkt, headerPart);
  }

  /**
   * What the caller remembered (rememberToken) about `token` on this connection, if it was the last token
   * presented on it; undefined otherwise. The caller still verifies the request's proof (verify).
   */
  tokenOn(connection: object, token: string): T | undefined {
    const last = this.bound.get(connection)?.token;
    return last !== undefined && last.value === token ? last.claims : undefined;
  }

  /** Remembers `token` as the last one presented on a connection bound to a key (no-op on any other). */
  rememberToken(connection: object, token: string, claims: T): void {
    const state = this.bound.get(connection);
    if (state) state.token = { value: token, claims };
  }

  private bindConnection(connection: object, jkt: string, headerPart: string): void {
    let state = this.bound.get(connection);
    if (!state) this.bound.set(connection, (state = { keys: new Map() }));
    const { keys } = state;
    if (keys.size >= KEYS_PER_CONNECTION && !keys.has(jkt)) keys.delete(keys.keys().next().value!);
    keys.set(jkt, headerPart);
  }

  /** The proof header's key and thumbprint, checked once per distinct header. */
  private proofKey(headerPart: string): ProofKey {
    const known = this.keys.get(headerPart);
    if (known) return known;
    const header = parseJson(headerPart);
    if (!header) throw proofRejected('dpop_malformed');
    if (header.typ !== DPOP_PROOF_TYP) throw proofRejected('dpop_bad_typ');
    // The one algorithm a TPM device key signs; `none`, HMAC and the rest never reach a key.
    if (header.alg !== 'ES256') throw proofRejected('dpop_alg_not_allowed');
    const jwk = header.jwk as Record<string, unknown> | undefined;
    if (
      !jwk ||
      typeof jwk !== 'object' ||
      jwk.kty !== 'EC' ||
      jwk.crv !== 'P-256' ||
      typeof jwk.x !== 'string' ||
      typeof jwk.y !== 'string' ||
      'd' in jwk
    ) {
      throw proofRejected('dpop_bad_jwk');
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, format: 'jwk' });
    } catch {
      throw proofRejected('dpop_bad_jwk');
    }
    const found = { jkt: jwkThumbprint(key), key };
    if (this.keys.size >= HEADERS_HELD) this.keys.delete(this.keys.keys().next().value!);
    this.keys.set(headerPart, found);
    return found;
  }
}

/** RFC 7638 thumbprint (SHA-256, base64url) of an EC P-256 public key: what `cnf.jkt` names. */
export function jwkThumbprint(key: KeyObject): string {
  const { crv, kty, x, y } = key.export({ format: 'jwk' }) as JsonWebKey;
  if (kty !== 'EC' || crv !== 'P-256' || !x || !y) throw new Error('a DPoP key is an EC P-256 public key');
  // Required members only, in lexicographic order, no whitespace.
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}

export function isJwkThumbprint(value: unknown): value is string {
  return typeof value === 'string' && SHA256_B64URL.test(value);
}

/** RFC 9449 §4.3: htu matches the request's URI without query and fragment (scheme and host case-free). */
function sameTarget(htu: string, expected: string): boolean {
  if (htu === expected) return true;
  try {
    const a = new URL(htu);
    const b = new URL(expected);
    return a.origin === b.origin && a.pathname === b.pathname;
  } catch {
    return false;
  }
}

function parseJson(part: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function proofRejected(reason: string): OtterError {
  return new OtterError('UNAUTHENTICATED', 'DPoP proof rejected', { reason });
}
