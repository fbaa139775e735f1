import { generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { Redis } from 'ioredis';
import { decodeJwt, decodeProtectedHeader, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpopProof } from '#otter/api-client';
import { OtterError } from '#otter/errors';
import { DeviceTokenService, type DeviceTokenServiceOptions } from './device-token.service.js';
import { jwkThumbprint } from './dpop-proof.js';
import { tokenSigningKeyFrom, type TokenSigningKey } from './token-signing-key.js';

const redisUrl = process.env.OTTER_TEST_REDIS_URL as string;
// One prefix per run: parallel runs on one Redis never see each other's jtis or revocations.
const keyPrefix = `otter-test-identity-${randomBytes(6).toString('hex')}:`;

let redis: Redis;
let serverKey: TokenSigningKey;

beforeAll(async () => {
  redis = new Redis(redisUrl);
  serverKey = await tokenSigningKeyFrom(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
});

afterAll(async () => {
  const keys = await redis.keys(`${keyPrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

function service(options: Partial<DeviceTokenServiceOptions> = {}): DeviceTokenService {
  return new DeviceTokenService(redis, { signingKey: serverKey, keyPrefix, ...options });
}

interface Node {
  nodeId: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/** A node and its device key; node:crypto's P-256 key stands in for the TPM-resident one. */
function newNode(): Node {
  return { nodeId: randomUUID(), ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) };
}

const now = (): number => Math.floor(Date.now() / 1000);

/** A device key thumbprint (RFC 7638) that access tokens are bound to. */
const JKT = 'x'.repeat(43);

/** A device assertion as the agent builds it, with any claim overridden or (undefined) left out. */
async function assertion(
  node: Node,
  claims: Partial<Record<'iss' | 'sub' | 'aud' | 'iat' | 'exp' | 'jti', unknown>> = {},
  signWith: KeyObject = node.privateKey,
): Promise<string> {
  const t = now();
  const payload = {
    iss: node.nodeId,
    sub: node.nodeId,
    aud: 'otter:device-auth',
    iat: t,
    exp: t + 120,
    jti: randomUUID(),
    ...claims,
  };
  const defined = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined));
  return new SignJWT(defined as JWTPayload).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).sign(signWith);
}

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OtterError);
  expect((error as OtterError).code).toBe('UNAUTHENTICATED');
  return (error as OtterError).details?.reason as string;
}

describe('DeviceTokenService: device assertions', () => {
  it('accepts a fresh assertion signed by the node device key, once', async () => {
    const tokens = service();
    const node = newNode();
    const jwt = await assertion(node, { jti: 'jti-happy-path' });
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const verified = await tokens.verifyDeviceAssertion(jwt, claim);
    expect(verified.nodeId).toBe(node.nodeId);
    expect(verified.jti).toBe('jti-happy-path');
    // The jti is remembered until the assertion could no longer pass (exp + skew), then forgotten.
    const ttl = await redis.ttl(`${keyPrefix}jti:${node.nodeId}:jti-happy-path`);
    expect(ttl).toBeGreaterThan(170);
    expect(ttl).toBeLessThanOrEqual(180);
    expect(await rejection(tokens.verifyDeviceAssertion(jwt, claim))).toBe('jti_reused');
  });

  it('refuses a replay on another replica, and lets exactly one of concurrent presentations through', async () => {
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const jwt = await assertion(node);
    const replicas = [service(), service(), service()];
    const replicaRedis = new Redis(redisUrl);
    replicas.push(new DeviceTokenService(replicaRedis, { signingKey: serverKey, keyPrefix }));
    try {
      const results = await Promise.allSettled(replicas.map((r) => r.verifyDeviceAssertion(jwt, claim)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results.filter((r) => r.status === 'rejected')) {
        expect((r.reason as OtterError).details).toEqual({ reason: 'jti_reused' });
      }
    } finally {
      await replicaRedis.quit();
    }
  });

  it('refuses alg none', async () => {
    const node = newNode();
    const t = now();
    const claims = {
      iss: node.nodeId,
      sub: node.nodeId,
      aud: 'otter:device-auth',
      iat: t,
      exp: t + 60,
      jti: 'x',
    };
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    expect(await rejection(service().verifyDeviceAssertion(unsigned, claim))).toBe('alg_not_allowed');
    // The same with a real ES256 signature glued on: the header still says none.
    const signed = (await assertion(node)).split('.')[2];
    const glued = `${b64url({ alg: 'none' })}.${b64url(claims)}.${signed}`;
    expect(await rejection(service().verifyDeviceAssertion(glued, claim))).toBe('alg_not_allowed');
  });

  it('refuses HS256 keyed with the device public key (algorithm confusion)', async () => {
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const t = now();
    const claims = { iss: node.nodeId, sub: node.nodeId, aud: 'otter:device-auth', iat: t, exp: t + 60 };
    const secrets = [
      Buffer.from(node.publicKey.export({ type: 'spki', format: 'pem' }).toString()),
      node.publicKey.export({ type: 'spki', format: 'der' }),
      Buffer.from(JSON.stringify(node.publicKey.export({ format: 'jwk' }))),
    ];
    for (const secret of secrets) {
      const jwt = await new SignJWT({ ...claims, jti: randomUUID() })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .sign(new Uint8Array(secret));
      expect(await rejection(service().verifyDeviceAssertion(jwt, claim))).toBe('alg_not_allowed');
    }
  });

  it('refuses other algorithms even when correctly signed (RS256, ES384)', async () => {
    const node = newNode();
    const t = now();
    const claims = { iss: node.nodeId, sub: node.nodeId, aud: 'otter:device-auth', iat: t, exp: t + 60 };
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const rs256 = await new SignJWT({ ...claims, jti: randomUUID() })
      .setProtectedHeader({ alg: 'RS256' })
      .sign(rsa.privateKey);
    const es384 = await new SignJWT({ ...claims, jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES384' })
      .sign(p384.privateKey);
    const tokens = service();
    for (const [jwt, key] of [
      [rs256, rsa.publicKey],
      [es384, p384.publicKey],
    ] as const) {
      // Even with the matching key offered as the "device key", neither the algorithm nor the key is accepted.
      expect(
        await rejection(tokens.verifyDeviceAssertion(jwt, { nodeId: node.nodeId, devicePublicKey: key })),
      ).toBe('unsupported_device_key');
      expect(
        await rejection(
          tokens.verifyDeviceAssertion(jwt, { nodeId: node.nodeId, devicePublicKey: node.publicKey }),
        ),
      ).toBe('alg_not_allowed');
    }
  });

  it('refuses an assertion signed by another P-256 key, and does not burn the jti it carried', async () => {
    const tokens = service();
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const forged = await assertion(node, { jti: 'shared-jti' }, newNode().privateKey);
    expect(await rejection(tokens.verifyDeviceAssertion(forged, claim))).toBe('bad_signature');
    await expect(
      tokens.verifyDeviceAssertion(await assertion(node, { jti: 'shared-jti' }), claim),
    ).resolves.toBeDefined();
  });

  it('refuses an expired assertion, but honours the clock skew', async () => {
    const tokens = service();
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const t = now();
    expect(
      await rejection(
        tokens.verifyDeviceAssertion(await assertion(node, { iat: t - 200, exp: t - 61 }), claim),
      ),
    ).toBe('expired');
    await expect(
      tokens.verifyDeviceAssertion(await assertion(node, { iat: t - 200, exp: t - 30 }), claim),
    ).resolves.toBeDefined();
  });

  it('refuses an assertion issued in the future beyond the skew', async () => {
    const tokens = service();
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const t = now();
    for (const iat of [t + 3600, t + 90]) {
      expect(
        await rejection(tokens.verifyDeviceAssertion(await assertion(node, { iat, exp: iat + 60 }), claim)),
      ).toBe('issued_in_future');
    }
    await expect(
      tokens.verifyDeviceAssertion(await assertion(node, { iat: t + 30, exp: t + 90 }), claim),
    ).resolves.toBeDefined();
  });

  it('refuses an assertion living longer than 300 s, or with exp not after iat', async () => {
    const tokens = service();
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const t = now();
    expect(
      await rejection(tokens.verifyDeviceAssertion(await assertion(node, { iat: t, exp: t + 301 }), claim)),
    ).toBe('lifetime_too_long');
    expect(
      await rejection(tokens.verifyDeviceAssertion(await assertion(node, { iat: t, exp: t }), claim)),
    ).toBe('invalid_exp');
    await expect(
      tokens.verifyDeviceAssertion(await assertion(node, { iat: t, exp: t + 300 }), claim),
    ).resolves.toBeDefined();
    // NumericDate may carry a fraction.
    await expect(
      tokens.verifyDeviceAssertion(await assertion(node, { iat: t + 0.25, exp: t + 60.5 }), claim),
    ).resolves.toBeDefined();
  });

  it('refuses an assertion without jti, iat or exp, or with an oversized or non-string jti', async () => {
    const tokens = service();
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const cases: Array<[Parameters<typeof assertion>[1], string]> = [
      [{ jti: undefined }, 'invalid_jti'],
      [{ jti: 'x'.repeat(129) }, 'invalid_jti'],
      [{ jti: 'with space' }, 'invalid_jti'],
      [{ jti: 42 }, 'invalid_jti'],
      [{ iat: undefined }, 'invalid_iat'],
      [{ exp: undefined }, 'invalid_exp'],
    ];
    for (const [claims, reason] of cases) {
      expect(await rejection(tokens.verifyDeviceAssertion(await assertion(node, claims), claim))).toBe(
        reason,
      );
    }
    await expect(
      tokens.verifyDeviceAssertion(await assertion(node, { jti: 'x'.repeat(128) }), claim),
    ).resolves.toBeDefined();
  });

  it('refuses a wrong audience, including the access-token audience and a list of audiences', async () => {
    const tokens = service();
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    for (const aud of [
      'otter:device-api',
      'something-else',
      undefined,
      ['otter:device-auth', 'otter:device-api'],
    ]) {
      expect(await rejection(tokens.verifyDeviceAssertion(await assertion(node, { aud }), claim))).toBe(
        'invalid_aud',
      );
    }
  });

  it('refuses iss or sub other than the node', async () => {
    const tokens = service();
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    const other = randomUUID();
    expect(await rejection(tokens.verifyDeviceAssertion(await assertion(node, { iss: other }), claim))).toBe(
      'invalid_iss',
    );
    expect(await rejection(tokens.verifyDeviceAssertion(await assertion(node, { sub: other }), claim))).toBe(
      'invalid_sub',
    );
    expect(
      await rejection(tokens.verifyDeviceAssertion(await assertion(node, { sub: undefined }), claim)),
    ).toBe('invalid_sub');
  });

  it("refuses node A's assertion presented for node B", async () => {
    const tokens = service();
    const a = newNode();
    const b = newNode();
    const jwtA = await assertion(a);
    // Checked against B's key, as the api does for a request naming B.
    expect(
      await rejection(tokens.verifyDeviceAssertion(jwtA, { nodeId: b.nodeId, devicePublicKey: b.publicKey })),
    ).toBe('bad_signature');
    // Even paired with A's key (a lookup mix-up), the claims name A, not B.
    expect(
      await rejection(tokens.verifyDeviceAssertion(jwtA, { nodeId: b.nodeId, devicePublicKey: a.publicKey })),
    ).toBe('invalid_iss');
    // And A's assertion still works for A: none of the above consumed its jti.
    await expect(
      tokens.verifyDeviceAssertion(jwtA, { nodeId: a.nodeId, devicePublicKey: a.publicKey }),
    ).resolves.toMatchObject({ nodeId: a.nodeId });
  });

  it('keeps jtis per node: the same jti from two nodes is no replay', async () => {
    const tokens = service();
    for (const node of [newNode(), newNode()]) {
      await expect(
        tokens.verifyDeviceAssertion(await assertion(node, { jti: 'common' }), {
          nodeId: node.nodeId,
          devicePublicKey: node.publicKey,
        }),
      ).resolves.toBeDefined();
    }
  });

  it('refuses garbage and oversized input', async () => {
    const node = newNode();
    const claim = { nodeId: node.nodeId, devicePublicKey: node.publicKey };
    for (const jwt of ['', 'a.b.c', 'not a jwt', `${await assertion(node)}x`, 'a'.repeat(5000)]) {
      const reason = await rejection(service().verifyDeviceAssertion(jwt, claim));
      expect(['malformed', 'bad_signature']).toContain(reason);
    }
  });
});

describe('DeviceTokenService: access tokens', () => {
  it('round-trips an ES256 access token for the device API', async () => {
    const tokens = service();
    const nodeId = randomUUID();
    const before = now();
    const { token, expiresAt } = await tokens.issueAccessToken(nodeId, JKT);
    expect(await tokens.verifyAccessToken(token)).toEqual({ nodeId, jkt: JKT });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: serverKey.kid });
    const payload = decodeJwt(token);
    expect(payload).toMatchObject({ iss: 'otter', sub: nodeId, aud: 'otter:device-api', cnf: { jkt: JKT } });
    expect(payload.exp! - payload.iat!).toBe(600);
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(expiresAt.getTime()).toBe(payload.exp! * 1000);
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(decodeJwt((await tokens.issueAccessToken(nodeId, JKT)).token).jti).not.toBe(payload.jti);
    // Another replica holding the same key accepts it.
    expect(await service().verifyAccessToken(token)).toEqual({ nodeId, jkt: JKT });
  });

  it('refuses an expired access token', async () => {
    const start = Date.now();
    let clock = start;
    const tokens = service({ accessTokenLifetimeSeconds: 30, now: () => new Date(clock) });
    const nodeId = randomUUID();
    const { token, expiresAt } = await tokens.issueAccessToken(nodeId, JKT);
    clock = expiresAt.getTime() - 1000;
    expect(await tokens.verifyAccessToken(token)).toEqual({ nodeId, jkt: JKT });
    clock = expiresAt.getTime();
    expect(await rejection(tokens.verifyAccessToken(token))).toBe('expired');
  });

  it('holds a token proven on a bound connection no longer than the token lives', async () => {
    let clock = Date.now();
    const tokens = service({ accessTokenLifetimeSeconds: 30, now: () => new Date(clock) });
    const node = newNode();
    const jkt = jwkThumbprint(node.publicKey);
    const key = {
      publicJwk: node.publicKey.export({ format: 'jwk' }),
      sign: (data: Buffer) =>
        Promise.resolve(sign('sha256', data, { key: node.privateKey, dsaEncoding: 'ieee-p1363' })),
    };
    const { token, expiresAt } = await tokens.issueAccessToken(node.nodeId, jkt);
    const url = 'https://otter.example/api/v1/devices/me/instructions';
    const connection = {};
    const request = async () => ({
      proof: await dpopProof(key, 'GET', url, token, new Date(clock)),
      method: 'GET',
      url,
      connection,
    });
    expect(await tokens.verifyBoundRequest(token, await request())).toEqual({ nodeId: node.nodeId, jkt });
    // Held for the connection: the same token again there skips the lookup, and still names its node and key.
    clock = expiresAt.getTime() - 1000;
    expect(await tokens.verifyBoundRequest(token, await request())).toEqual({ nodeId: node.nodeId, jkt });
    clock = expiresAt.getTime();
    expect(await rejection(tokens.verifyBoundRequest(token, await request()))).toBe('expired');
    // Another token on that connection is checked on its own: one of another node's key is refused.
    const stranger = await tokens.issueAccessToken(randomUUID(), JKT);
    expect(await rejection(tokens.verifyBoundRequest(stranger.token, await request()))).toBe(
      'dpop_key_mismatch',
    );
  });

  it('refuses a token whose payload was tampered with, also after the genuine one was verified (and held)', async () => {
    const tokens = service();
    const { token } = await tokens.issueAccessToken(randomUUID(), JKT);
    await tokens.verifyAccessToken(token);
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as JWTPayload;
    for (const change of [{ sub: randomUUID() }, { exp: claims.exp! + 3600 }]) {
      const tampered = `${header}.${b64url({ ...claims, ...change })}.${signature}`;
      expect(await rejection(tokens.verifyAccessToken(tampered))).toBe('bad_signature');
    }
  });

  it('refuses a token of ours that is bound to no device key, and will not issue one', async () => {
    const tokens = service();
    const t = now();
    const claims = {
      iss: 'otter',
      sub: randomUUID(),
      aud: 'otter:device-api',
      iat: t,
      exp: t + 60,
      jti: 'j',
    };
    for (const cnf of [undefined, {}, { jkt: 'short' }, { 'x5t#S256': JKT }]) {
      const jwt = await new SignJWT({ ...claims, ...(cnf ? { cnf } : {}) })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
        .sign(serverKey.privateKey);
      expect(await rejection(tokens.verifyAccessToken(jwt))).toBe('not_bound');
    }
    await expect(tokens.issueAccessToken(randomUUID(), 'short')).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    });
  });

  it('refuses a device assertion presented as an access token', async () => {
    const tokens = service();
    const node = newNode();
    const deviceJwt = await assertion(node, { aud: 'otter:device-api' });
    expect(await rejection(tokens.verifyAccessToken(deviceJwt))).toBe('bad_signature');
  });

  it("refuses tokens signed with Otter's key that are not access tokens (wrong aud, typ or iss)", async () => {
    const tokens = service();
    const t = now();
    const base = { iss: 'otter', sub: randomUUID(), aud: 'otter:device-api', iat: t, exp: t + 60, jti: 'j' };
    const cases: Array<[Record<string, unknown>, Record<string, unknown>, string]> = [
      [{ aud: 'otter:device-auth' }, { typ: 'at+jwt' }, 'invalid_aud'],
      [{}, { typ: 'JWT' }, 'invalid_typ'],
      [{}, {}, 'invalid_typ'],
      [{ iss: 'someone-else' }, { typ: 'at+jwt' }, 'invalid_iss'],
      [{ sub: 'a,b' }, { typ: 'at+jwt' }, 'invalid_sub'],
    ];
    for (const [claims, header, reason] of cases) {
      const jwt = await new SignJWT({ ...base, ...claims } as JWTPayload)
        .setProtectedHeader({ alg: 'ES256', ...header })
        .sign(serverKey.privateKey);
      expect(await rejection(tokens.verifyAccessToken(jwt))).toBe(reason);
    }
  });

  it('refuses alg none, HS256 keyed with the server public key, and a token from another server key', async () => {
    const tokens = service();
    const nodeId = randomUUID();
    const t = now();
    const claims = { iss: 'otter', sub: nodeId, aud: 'otter:device-api', iat: t, exp: t + 60, jti: 'j' };
    const none = `${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(claims)}.`;
    expect(await rejection(tokens.verifyAccessToken(none))).toBe('alg_not_allowed');
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .sign(
        new Uint8Array(Buffer.from(serverKey.publicKey.export({ type: 'spki', format: 'pem' }).toString())),
      );
    expect(await rejection(tokens.verifyAccessToken(hs256))).toBe('alg_not_allowed');
    const otherServer = service({
      signingKey: await tokenSigningKeyFrom(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    });
    const { token } = await otherServer.issueAccessToken(nodeId, JKT);
    expect(await rejection(tokens.verifyAccessToken(token))).toBe('bad_signature');
  });

  it('revokes a node across replicas at once, and reinstates it', async () => {
    const replicaRedis = new Redis(redisUrl);
    try {
      const a = service();
      const b = new DeviceTokenService(replicaRedis, { signingKey: serverKey, keyPrefix });
      const nodeId = randomUUID();
      const bystander = randomUUID();
      expect(await b.isRevoked(nodeId)).toBe(false);
      await a.revokeNode(nodeId);
      expect(await b.isRevoked(nodeId)).toBe(true);
      expect(await a.isRevoked(nodeId)).toBe(true);
      expect(await b.isRevoked(bystander)).toBe(false);
      await b.reinstateNode(nodeId);
      expect(await a.isRevoked(nodeId)).toBe(false);
    } finally {
      await replicaRedis.quit();
    }
  });
});
