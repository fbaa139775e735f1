import { generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { INestApplicationContext } from '@nestjs/common';
import { dpopHeaders, type DpopKey } from '#otter/api-client';
import { DB, type Db } from '#otter/db';
import { DeviceTokenService, jwkThumbprint } from '#otter/identity';
import { encodeTpm2b, TPM_ALG, TPM_ECC_CURVE } from '#otter/tpm-wire';

// TPMA_OBJECT bits (TPM 2.0 Part 2, 8.3) of the signing keys an agent creates.
const FIXED_TPM = 1 << 1;
const FIXED_PARENT = 1 << 4;
const SENSITIVE_DATA_ORIGIN = 1 << 5;
const USER_WITH_AUTH = 1 << 6;
const RESTRICTED = 1 << 16;
const SIGN = 1 << 18;
const SIGNING_KEY = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | SIGN;

/** TPMA_OBJECT of an AK (restricted: it signs only what the TPM made) and of a device key (unrestricted). */
export const SIGNING_KEY_ATTRIBUTES = { ak: SIGNING_KEY | RESTRICTED, deviceKey: SIGNING_KEY } as const;

/**
 * The TPMT_PUBLIC a TPM reports for an ECDSA-SHA256 P-256 signing key (nameAlg sha256, empty policy, no
 * symmetric, no KDF) with `attributes`, for a key held in software: wrapped by encodeTpm2b it is the key's
 * TPM2B_PUBLIC, and its SHA-256 is the key's name. The one copy: the benches' simulated nodes use it too (built).
 */
export function softwareTpmPublicArea(publicKey: KeyObject, attributes: number): Buffer {
  const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
  const attributeBytes = Buffer.alloc(4);
  attributeBytes.writeUInt32BE(attributes >>> 0);
  const { x, y } = publicKey.export({ format: 'jwk' });
  if (!x || !y) throw new Error('an EC P-256 public key is needed');
  return Buffer.concat([
    u16(TPM_ALG.ECC),
    u16(TPM_ALG.SHA256),
    attributeBytes,
    encodeTpm2b(Buffer.alloc(0)), // authPolicy
    u16(TPM_ALG.NULL), // symmetric
    u16(TPM_ALG.ECDSA),
    u16(TPM_ALG.SHA256),
    u16(TPM_ECC_CURVE.NIST_P256),
    u16(TPM_ALG.NULL), // kdf
    encodeTpm2b(Buffer.from(x, 'base64url')),
    encodeTpm2b(Buffer.from(y, 'base64url')),
  ]);
}

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
    return encodeTpm2b(softwareTpmPublicArea(this.publicKey, SIGNING_KEY_ATTRIBUTES.deviceKey));
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
