import { generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { dpopHeaders, type DpopKey } from '#otter/api-client';
import { DeviceTokenService, jwkThumbprint } from '#otter/identity';

/**
 * A node's device key in software, for tests that act as a node without a TPM: it signs DPoP proofs exactly as
 * the agent's TPM-resident key does (ECDSA P-256, r ‖ s).
 */
export class SoftwareDeviceKey implements DpopKey {
  readonly publicJwk: JsonWebKey;
  /** RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key. */
  readonly jkt: string;

  private constructor(
    readonly publicKey: KeyObject,
    readonly privateKey: KeyObject,
  ) {
    this.publicJwk = publicKey.export({ format: 'jwk' });
    this.jkt = jwkThumbprint(publicKey);
  }

  static generate(): SoftwareDeviceKey {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return new SoftwareDeviceKey(publicKey, privateKey);
  }

  sign(data: Buffer): Promise<Buffer> {
    return Promise.resolve(sign('sha256', data, { key: this.privateKey, dsaEncoding: 'ieee-p1363' }));
  }

  /** `Authorization: DPoP <token>` and a fresh proof for this request. */
  headers(method: string, url: string, accessToken: string): Promise<Record<string, string>> {
    return dpopHeaders(this, method, url, accessToken);
  }
}

/** A node's credentials as the token endpoint would issue them: a device key and a token bound to it. */
export interface DeviceCredentialsForTest {
  key: SoftwareDeviceKey;
  token: string;
  /** Headers for one request to `url` (absolute) with `method`. */
  headers(method: string, url: string): Promise<Record<string, string>>;
}

/** A fresh device key and an access token bound to it, issued straight by the api's token service. */
export async function deviceCredentialsFor(
  tokens: DeviceTokenService,
  nodeId: string,
): Promise<DeviceCredentialsForTest> {
  const key = SoftwareDeviceKey.generate();
  const { token } = await tokens.issueAccessToken(nodeId, key.jkt);
  return { key, token, headers: (method, url) => key.headers(method, url, token) };
}
