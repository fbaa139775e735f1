import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type OtterConfig } from '#otter/config';
import { AttestationNonces } from './attestation-nonces.js';

const redisUrl = process.env.OTTER_TEST_REDIS_URL as string;
const queuePrefix = `otter-test-nonces-${randomBytes(6).toString('hex')}`;

let redis: Redis;

beforeAll(() => {
  redis = new Redis(redisUrl);
});

afterAll(async () => {
  const keys = await redis.keys(`${queuePrefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

function nonces(ttlSeconds: number, perNode = 16): AttestationNonces {
  const config: OtterConfig = loadConfig({
    OTTER_QUEUE_PREFIX: queuePrefix,
    OTTER_ATTESTATION_NONCE_TTL: String(ttlSeconds),
    OTTER_ATTESTATION_NONCES_PER_NODE: String(perNode),
  });
  return new AttestationNonces(redis, config);
}

describe('AttestationNonces', () => {
  it('issues a nonce that lives in Redis for the configured time and says when it expires', async () => {
    const before = Date.now();
    const nodeId = randomUUID();
    const { nonce, expiresAt } = await nonces(120).issue(nodeId);
    expect(nonce).toMatch(/^[0-9a-f]{64}$/);
    expect(expiresAt.getTime() - before).toBeGreaterThanOrEqual(119_000);
    expect(expiresAt.getTime() - before).toBeLessThanOrEqual(121_000);
    const key = `${queuePrefix}:attest-nonces:${nodeId}`;
    expect(Math.floor(Number(await redis.zscore(key, nonce)) / 1000)).toBe(expiresAt.getTime());
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(115);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it('takes a nonce once, and only for the node it was issued to', async () => {
    const store = nonces(120);
    const nodeId = randomUUID();
    const { nonce } = await store.issue(nodeId);
    expect(await store.consume(randomUUID(), nonce)).toBe(false);
    expect(await store.consume(nodeId, nonce)).toBe(true);
    expect(await store.consume(nodeId, nonce)).toBe(false);
  });

  it('refuses a nonce it never issued and one that is not 64 lowercase hex digits', async () => {
    const store = nonces(120);
    const nodeId = randomUUID();
    expect(await store.consume(nodeId, randomBytes(32).toString('hex'))).toBe(false);
    expect(await store.consume(nodeId, '*')).toBe(false);
    expect(await store.consume(nodeId, 'AB'.repeat(32))).toBe(false);
  });

  it('refuses a nonce once its time is up, by the Redis clock', async () => {
    const store = nonces(1);
    const nodeId = randomUUID();
    const { nonce } = await store.issue(nodeId);
    await new Promise((r) => setTimeout(r, 1_300));
    expect(await store.consume(nodeId, nonce)).toBe(false);
  });

  it('holds at most OTTER_ATTESTATION_NONCES_PER_NODE unused nonces per node, dropping the oldest', async () => {
    const store = nonces(120, 3);
    const flooder = randomUUID();
    const neighbour = randomUUID();
    const theirs = await store.issue(neighbour);
    const issued: string[] = [];
    for (let i = 0; i < 50; i++) issued.push((await store.issue(flooder)).nonce);
    const key = `${queuePrefix}:attest-nonces:${flooder}`;
    expect(await redis.zcard(key)).toBe(3);
    expect(await redis.ttl(key)).toBeLessThanOrEqual(120);
    expect(await redis.keys(`${queuePrefix}:attest-nonces:${flooder}*`)).toEqual([key]);
    expect(await store.consume(flooder, issued[0]!)).toBe(false);
    expect(await store.consume(flooder, issued[46]!)).toBe(false);
    for (const nonce of issued.slice(47)) expect(await store.consume(flooder, nonce)).toBe(true);
    expect(await redis.exists(key)).toBe(0);
    // Another node's nonce was never touched by the flood.
    expect(await store.consume(neighbour, theirs.nonce)).toBe(true);
  });
});
