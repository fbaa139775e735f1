import { generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { INestApplicationContext } from '@nestjs/common';
import { dpopHeaders, type DpopKey } from '#otter/api-client';
import { DB, type Db } from '#otter/db';
import { DeviceTokenService, jwkThumbprint } from '#otter/identity';
import { encodeTpm2b, TPM_ALG, TPM_ECC_CURVE } from '#otter/tpm-wire';

/** fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign: the agent's device key (TPMA_OBJECT). */
const DEVICE_KEY_ATTRIBUTES = 0x00040072;

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

  /** The key as a TPM reports it (TPM2B_PUBLIC, unrestricted ECDSA P-256 signing key): a node row's device key. */
  tpm2bPublic(): Buffer {
    const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
    const attributes = Buffer.alloc(4);
    attributes.writeUInt32BE(DEVICE_KEY_ATTRIBUTES);
    const { x, y } = this.publicJwk as { x: string; y: string };
    return encodeTpm2b(
      Buffer.concat([
        u16(TPM_ALG.ECC),
        u16(TPM_ALG.SHA256),
        attributes,
        encodeTpm2b(Buffer.alloc(0)), // authPolicy
        u16(TPM_ALG.NULL), // symmetric
        u16(TPM_ALG.ECDSA),
        u16(TPM_ALG.SHA256),
        u16(TPM_ECC_CURVE.NIST_P256),
        u16(TPM_ALG.NULL), // kdf
        encodeTpm2b(Buffer.from(x, 'base64url')),
        encodeTpm2b(Buffer.from(y, 'base64url')),
      ]),
    );
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

/**
 * A fresh device key, recorded as the node's device key (as its identity issuance would: the api accepts a token
 * only while it is bound to the key the node holds), and an access token bound to it, issued straight by the api's
 * token service.
 */
export async function deviceCredentialsFor(
  app: INestApplicationContext,
  nodeId: string,
): Promise<DeviceCredentialsForTest> {
  const key = SoftwareDeviceKey.generate();
  await app
    .get<Db>(DB)
    .updateTable('nodes')
    .set({ device_public: key.tpm2bPublic().toString('base64') })
    .where('id', '=', nodeId)
    .execute();
  const { token } = await app.get(DeviceTokenService).issueAccessToken(nodeId, key.jkt);
  return { key, token, headers: (method, url) => key.headers(method, url, token) };
}
