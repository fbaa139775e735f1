import { createHash } from 'node:crypto';

/**
 * RFC 9449 (DPoP), the parts the agent and the api must agree on. Device access tokens are bound to the
 * node's TPM device key: a request presents `Authorization: DPoP <token>` and a `DPoP` header holding a proof
 * (a JWS of this typ, ES256, the device key's public JWK in its header) with these claims.
 */
export const DPOP_PROOF_TYP = 'dpop+jwt';
export const DPOP_AUTH_SCHEME = 'DPoP';
export const DPOP_HEADER = 'dpop';

export interface DpopProofClaims {
  /** Unique per proof: a proof is accepted once. */
  jti: string;
  /** The request's method, upper case. */
  htm: string;
  /** The request's URL without query or fragment, as the client addressed it. */
  htu: string;
  /** Seconds since the epoch. */
  iat: number;
  /** accessTokenHash() of the access token sent with the proof. */
  ath: string;
}

/** `ath`: base64url SHA-256 of the access token's ASCII bytes (RFC 9449 §4.2). */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url');
}

/** A URL as `htu` names it: no query, no fragment. */
export function dpopTargetUri(url: string | URL): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}
