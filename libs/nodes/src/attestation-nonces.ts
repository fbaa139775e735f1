import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { IDENTITY_REDIS } from '#otter/identity';

/** Single-use, short-lived quote nonces in Redis, shared by every api replica. */
@Injectable()
export class AttestationNonces {
  constructor(
    @Inject(IDENTITY_REDIS) private readonly redis: Redis,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async issue(nodeId: string): Promise<{ nonce: string; expiresAt: Date }> {
    const nonce = randomBytes(32).toString('hex');
    await this.redis.set(this.key(nodeId, nonce), '1', 'EX', this.config.devices.nonceTtl);
    return { nonce, expiresAt: new Date(Date.now() + this.config.devices.nonceTtl * 1000) };
  }

  /** True once per issued nonce, for the node it was issued to, before it expires. */
  async consume(nodeId: string, nonce: string): Promise<boolean> {
    if (!/^[0-9a-f]{64}$/.test(nonce)) return false;
    return (await this.redis.del(this.key(nodeId, nonce))) === 1;
  }

  private key(nodeId: string, nonce: string): string {
    return `${this.config.queuePrefix}:attest-nonce:${nodeId}:${nonce}`;
  }
}
