import { randomUUID, type JsonWebKey } from 'node:crypto';
import {
  accessTokenHash,
  DPOP_AUTH_SCHEME,
  DPOP_PROOF_TYP,
  dpopTargetUri,
  type DpopProofClaims,
} from '#otter/contracts';

/** The key a client proves possession of: a TPM-resident device key in the agent, a software key in tests. */
export interface DpopKey {
  /** Its public key as a JWK (EC P-256: kty, crv, x, y). */
  publicJwk: JsonWebKey;
  /** ECDSA P-256 over SHA-256(data), as r ‖ s (32 bytes each). */
  sign(data: Buffer): Promise<Buffer>;
}

/** An RFC 9449 proof for one request made with `accessToken`. */
export async function dpopProof(
  key: DpopKey,
  method: string,
  url: string | URL,
  accessToken: string,
  now: Date = new Date(),
): Promise<string> {
  const { kty, crv, x, y } = key.publicJwk;
  const header = { typ: DPOP_PROOF_TYP, alg: 'ES256', jwk: { kty, crv, x, y } };
  const claims: DpopProofClaims = {
    jti: randomUUID(),
    htm: method.toUpperCase(),
    htu: dpopTargetUri(url),
    iat: Math.floor(now.getTime() / 1000),
    ath: accessTokenHash(accessToken),
  };
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  const signature = await key.sign(Buffer.from(input, 'ascii'));
  return `${input}.${signature.toString('base64url')}`;
}

/** The headers of a device request: the bound token and a fresh proof for this method and URL. */
export async function dpopHeaders(
  key: DpopKey,
  method: string,
  url: string | URL,
  accessToken: string,
): Promise<{ authorization: string; dpop: string }> {
  return {
    authorization: `${DPOP_AUTH_SCHEME} ${accessToken}`,
    dpop: await dpopProof(key, method, url, accessToken),
  };
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
