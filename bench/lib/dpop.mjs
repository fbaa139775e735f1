// DPoP (RFC 9449) proofs for the benches' simulated nodes, built synchronously so autocannon's setupRequest
// can make one per request. Same wire format as libs/api-client/src/dpop-proof.ts (the agent's): the api
// refuses anything else, and a refused request fails the bench.
import { createHash, randomUUID, sign } from 'node:crypto';

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * A node's device key as DPoP signs with it: the header segment (the same bytes in every proof, as the agent
 * sends them) and the RFC 7638 thumbprint a bound token names.
 * @param {import('node:crypto').KeyObject} privateKey  EC P-256
 * @param {import('node:crypto').KeyObject} publicKey
 */
export function dpopKey(privateKey, publicKey) {
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  return {
    privateKey,
    header: b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } }),
    jkt: createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url'),
  };
}

/** `Authorization: DPoP <token>` and a fresh proof for one request. */
export function dpopHeaders(key, token, method, url) {
  const claims = {
    jti: randomUUID(),
    htm: method,
    htu: url,
    iat: Math.floor(Date.now() / 1000),
    ath: createHash('sha256').update(token, 'ascii').digest('base64url'),
  };
  const input = `${key.header}.${b64(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return { authorization: `DPoP ${token}`, dpop: `${input}.${signature.toString('base64url')}` };
}

/** Whether an access token is bound to a key (cnf.jkt): the build under test wants DPoP proofs. */
export function isBoundToken(token) {
  const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
  return typeof payload?.cnf?.jkt === 'string';
}
