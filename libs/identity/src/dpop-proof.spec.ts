import {
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign,
  type KeyObject,
} from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpopProof } from '#otter/api-client';
import { accessTokenHash } from '#otter/contracts';
import { DpopProofVerifier, jwkThumbprint, type DpopRequest } from './dpop-proof.js';
import { DpopReplayCache } from './dpop-replay-cache.js';

const redisUrl = process.env.OTTER_TEST_REDIS_URL as string;
const keyPrefix = `otter-test-dpop-${randomBytes(6).toString('hex')}:`;
let redis: Redis;

beforeAll(() => {
  redis = new Redis(redisUrl);
});
afterAll(async () => {
  const keys = await redis.keys(`${keyPrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const URL_ = 'https://otter.example/api/v1/devices/me/instructions';
const TOKEN = 'header.payload.signature';

function deviceKey(): { publicKey: KeyObject; privateKey: KeyObject; jkt: string } {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...pair, jkt: jwkThumbprint(pair.publicKey) };
}

function verifier(now?: () => Date): DpopProofVerifier {
  const replays = new DpopReplayCache(redis, keyPrefix);
  return new DpopProofVerifier({ consumeJti: (k, j, ttl) => replays.consume(k, j, ttl), now });
}

/** A proof with any header or claim replaced (undefined: left out), signed by `signer`. */
function handMade(
  key: KeyObject,
  signer: KeyObject,
  header: Record<string, unknown> = {},
  claims: Record<string, unknown> = {},
): string {
  const { kty, crv, x, y } = key.export({ format: 'jwk' });
  const h = { typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y }, ...header };
  const c = {
    jti: randomUUID(),
    htm: 'GET',
    htu: URL_,
    iat: Math.floor(Date.now() / 1000),
    ath: accessTokenHash(TOKEN),
    ...claims,
  };
  const strip = (o: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const input = `${b64(strip(h))}.${b64(strip(c))}`;
  const signature = sign('sha256', Buffer.from(input), { key: signer, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const request = (proof: string | undefined, over: Partial<DpopRequest> = {}): DpopRequest => ({
  proof,
  method: 'GET',
  url: URL_,
  ...over,
});

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (e) {
    expect(e).toMatchObject({ code: 'UNAUTHENTICATED' });
    return (e as { details: { reason: string } }).details.reason;
  }
  throw new Error('the proof was accepted');
}

describe('DpopProofVerifier', () => {
  it('accepts the client’s proof for this request, token and key, once', async () => {
    const device = deviceKey();
    const v = verifier();
    const key = {
      publicJwk: device.publicKey.export({ format: 'jwk' }),
      sign: (data: Buffer) =>
        Promise.resolve(sign('sha256', data, { key: device.privateKey, dsaEncoding: 'ieee-p1363' })),
    };
    const proof = await dpopProof(key, 'get', `${URL_}?since=3#x`, TOKEN);
    await v.verify(request(proof), TOKEN, device.jkt);
    // The same proof again, here or on another replica sharing the Redis: a replay.
    expect(await reason(v.verify(request(proof), TOKEN, device.jkt))).toBe('dpop_jti_reused');
    expect(await reason(verifier().verify(request(proof), TOKEN, device.jkt))).toBe('dpop_jti_reused');
    // A second proof by the same key (its header cached) passes.
    await v.verify(request(await dpopProof(key, 'GET', URL_, TOKEN)), TOKEN, device.jkt);
  });

  it('refuses a copied token with no proof, or with a proof by any other key', async () => {
    const device = deviceKey();
    const thief = deviceKey();
    const v = verifier();
    expect(await reason(v.verify(request(undefined), TOKEN, device.jkt))).toBe('dpop_proof_missing');
    const own = handMade(thief.publicKey, thief.privateKey);
    expect(await reason(v.verify(request(own), TOKEN, device.jkt))).toBe('dpop_key_mismatch');
    // The device's public key in the header, signed by the thief's key.
    const forged = handMade(device.publicKey, thief.privateKey);
    expect(await reason(v.verify(request(forged), TOKEN, device.jkt))).toBe('dpop_bad_signature');
  });

  it('refuses a proof made for another request, token or time', async () => {
    const device = deviceKey();
    const v = verifier();
    const t = Math.floor(Date.now() / 1000);
    const cases: Array<[Record<string, unknown>, Partial<DpopRequest>, string]> = [
      [{ htm: 'POST' }, {}, 'dpop_htm_mismatch'],
      [{}, { method: 'POST' }, 'dpop_htm_mismatch'],
      [{ htu: 'https://otter.example/api/v1/devices/me/reports' }, {}, 'dpop_htu_mismatch'],
      [{ htu: 'https://evil.example/api/v1/devices/me/instructions' }, {}, 'dpop_htu_mismatch'],
      [{ htu: 'http://otter.example/api/v1/devices/me/instructions' }, {}, 'dpop_htu_mismatch'],
      [{ htu: 'not a url' }, {}, 'dpop_htu_mismatch'],
      [{ ath: accessTokenHash('another.token.value') }, {}, 'dpop_ath_mismatch'],
      [{ ath: undefined }, {}, 'dpop_ath_mismatch'],
      [{ iat: t - 120 }, {}, 'dpop_proof_expired'],
      [{ iat: t + 120 }, {}, 'dpop_issued_in_future'],
      [{ iat: String(t) }, {}, 'dpop_invalid_iat'],
      [{ jti: undefined }, {}, 'dpop_invalid_jti'],
      [{ jti: 'has space' }, {}, 'dpop_invalid_jti'],
    ];
    for (const [claims, over, expected] of cases) {
      const proof = handMade(device.publicKey, device.privateKey, {}, claims);
      expect([claims, over, await reason(v.verify(request(proof, over), TOKEN, device.jkt))]).toEqual([
        claims,
        over,
        expected,
      ]);
    }
    // Host case and a default port do not matter (RFC 9449 §4.3: URIs compared after normalisation).
    const normalised = handMade(
      device.publicKey,
      device.privateKey,
      {},
      { htu: URL_.replace('otter', 'OTTER') },
    );
    await v.verify(
      request(normalised, { url: URL_.replace('.example/', '.example:443/') }),
      TOKEN,
      device.jkt,
    );
  });

  it('refuses headers that are not a DPoP ES256 proof with a public P-256 JWK', async () => {
    const device = deviceKey();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    const v = verifier();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ typ: 'JWT' }, 'dpop_bad_typ'],
      [{ typ: undefined }, 'dpop_bad_typ'],
      [{ alg: 'none' }, 'dpop_alg_not_allowed'],
      [{ alg: 'HS256' }, 'dpop_alg_not_allowed'],
      [{ jwk: undefined }, 'dpop_bad_jwk'],
      [{ jwk: rsa }, 'dpop_bad_jwk'],
      [{ jwk: { ...device.privateKey.export({ format: 'jwk' }) } }, 'dpop_bad_jwk'],
      [{ jwk: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' } }, 'dpop_bad_jwk'],
    ];
    for (const [header, expected] of cases) {
      const proof = handMade(device.publicKey, device.privateKey, header);
      expect([header, await reason(v.verify(request(proof), TOKEN, device.jkt))]).toEqual([header, expected]);
    }
    for (const malformed of ['', 'a.b', 'a.b.c.d', `${'x'.repeat(3000)}.a.b`, '!!.??.**']) {
      expect(await reason(v.verify(request(malformed), TOKEN, device.jkt))).toMatch(
        /^dpop_(malformed|proof_missing)$/,
      );
    }
  });

  it('keeps a jti only while its proof could still pass, and spends it only on a proof that passed', async () => {
    const device = deviceKey();
    let clock = Date.now();
    const v = verifier(() => new Date(clock));
    const jti = randomUUID();
    const wrongUrl = handMade(device.publicKey, device.privateKey, {}, { jti, htu: 'https://x.example/' });
    expect(await reason(v.verify(request(wrongUrl), TOKEN, device.jkt))).toBe('dpop_htu_mismatch');
    const proof = handMade(device.publicKey, device.privateKey, {}, { jti });
    await v.verify(request(proof), TOKEN, device.jkt);
    const ttl = await redis.ttl(`${keyPrefix}dpop:${device.jkt}:${jti}`);
    expect(ttl).toBeGreaterThan(55);
    expect(ttl).toBeLessThanOrEqual(61);
    clock += 61_000;
    expect(await reason(v.verify(request(proof), TOKEN, device.jkt))).toBe('dpop_proof_expired');
  });

  it('answers many concurrent proofs with pipelined Redis writes, each proof accepted once', async () => {
    const device = deviceKey();
    const v = verifier();
    const proofs = Array.from({ length: 200 }, () => handMade(device.publicKey, device.privateKey));
    const outcomes = await Promise.allSettled(
      [...proofs, ...proofs.slice(0, 50)].map((p) => v.verify(request(p), TOKEN, device.jkt)),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(200);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(50);
  });
});

describe('DpopProofVerifier, connections bound to a key (OTTER_DPOP_CONNECTION_BINDING)', () => {
  it('checks the first proof on a connection fully, then only that later ones come from the same key', async () => {
    const device = deviceKey();
    const other = deviceKey();
    const v = verifier();
    const connection = {};
    /** A proof with that key's header and a signature of zeros. */
    const unsigned = (key: { publicKey: KeyObject; privateKey: KeyObject }): string =>
      `${handMade(key.publicKey, key.privateKey).split('.').slice(0, 2).join('.')}.${Buffer.alloc(64).toString('base64url')}`;
    // Nothing is bound before a proof passed, and a failed proof binds nothing.
    expect(await reason(v.verify(request(unsigned(device), { connection }), TOKEN, device.jkt))).toBe(
      'dpop_bad_signature',
    );
    await v.verify(request(handMade(device.publicKey, device.privateKey), { connection }), TOKEN, device.jkt);
    // Bound: the same key's header suffices on this connection...
    await v.verify(request(unsigned(device), { connection }), TOKEN, device.jkt);
    // ...but not on any other connection, nor without a proof, nor for another key's token.
    expect(await reason(v.verify(request(unsigned(device), { connection: {} }), TOKEN, device.jkt))).toBe(
      'dpop_bad_signature',
    );
    expect(await reason(v.verify(request(unsigned(device)), TOKEN, device.jkt))).toBe('dpop_bad_signature');
    expect(await reason(v.verify(request(undefined, { connection }), TOKEN, device.jkt))).toBe(
      'dpop_proof_missing',
    );
    expect(await reason(v.verify(request(unsigned(other), { connection }), TOKEN, other.jkt))).toBe(
      'dpop_bad_signature',
    );
    expect(await reason(v.verify(request(unsigned(device), { connection }), TOKEN, other.jkt))).toBe(
      'dpop_key_mismatch',
    );
  });
});

describe('jwkThumbprint', () => {
  it('gives RFC 9449’s example key the thumbprint its examples bind tokens to', () => {
    const key = {
      kty: 'EC',
      crv: 'P-256',
      x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs',
      y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA',
    };
    expect(jwkThumbprint(createPublicKey({ key, format: 'jwk' }))).toBe(
      '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I',
    );
  });
});
