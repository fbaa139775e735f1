import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { IDENTITY_REDIS } from '#otter/identity';

/**
 * Adds a nonce to the node's sorted set, scored by its expiry in microseconds by the Redis clock (kept strictly
 * increasing, so rank is issue order even within one microsecond), drops the expired ones and the oldest
 * beyond the cap, and lets the whole set expire with its newest nonce. Returns the expiry in ms.
 */
const ISSUE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2]) * 1000
local cap = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expires = now + ttl
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= expires then expires = tonumber(last[2]) + 1 end
redis.call('ZADD', KEYS[1], expires, ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > cap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - cap - 1) end
redis.call('PEXPIRE', KEYS[1], math.ceil((expires - now) / 1000))
return math.floor(expires / 1000)
`;

/** Removes the nonce; 1 only when it was there and had not expired by the Redis clock. */
const CONSUME = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(expires) <= now then return 0 end
return 1
`;

type NonceRedis = Redis & {
  otterIssueNonce(key: string, nonce: string, ttlMs: number, cap: number): Promise<number>;
  otterConsumeNonce(key: string, nonce: string): Promise<number>;
};

/**
 * Single-use, short-lived quote nonces in Redis, shared by every api replica: one sorted set per node that
 * expires with its newest nonce, holding at most OTTER_ATTESTATION_NONCES_PER_NODE unused nonces (a new
 * challenge drops the oldest), so a node asking for challenges in a loop holds a bounded few keys, not one
 * per request.
 */
@Injectable()
export class AttestationNonces {
  private readonly redis: NonceRedis;

  constructor(
    @Inject(IDENTITY_REDIS) redis: Redis,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {
    const commands = redis as NonceRedis;
    if (typeof commands.otterIssueNonce !== 'function') {
      redis.defineCommand('otterIssueNonce', { numberOfKeys: 1, lua: ISSUE });
      redis.defineCommand('otterConsumeNonce', { numberOfKeys: 1, lua: CONSUME });
    }
    this.redis = commands;
  }

  async issue(nodeId: string): Promise<{ nonce: string; expiresAt: Date }> {
    const nonce = randomBytes(32).toString('hex');
    const { nonceTtl, noncesPerNode } = this.config.devices;
    const expiresAtMs = await this.redis.otterIssueNonce(
      this.key(nodeId),
      nonce,
      nonceTtl * 1000,
      noncesPerNode,
    );
    return { nonce, expiresAt: new Date(Number(expiresAtMs)) };
  }

  /** True once per issued nonce, for the node it was issued to, before it expires. */
  async consume(nodeId: string, nonce: string): Promise<boolean> {
    if (!/^[0-9a-f]{64}$/.test(nonce)) return false;
    return (await this.redis.otterConsumeNonce(this.key(nodeId), nonce)) === 1;
  }

  private key(nodeId: string): string {
    return `${this.config.queuePrefix}:attest-nonces:${nodeId}`;
  }
}
