import type { Redis } from 'ioredis';

interface Pending {
  key: string;
  ttl: number;
  resolve: (first: boolean) => void;
  reject: (error: unknown) => void;
}

/** Most SETs sent in one pipeline. */
const MAX_BATCH = 500;

/**
 * The jtis of accepted DPoP proofs, in Redis (`<prefix>dpop:<jkt>:<jti>`, SET NX with the proof's remaining
 * lifetime), so that a proof replayed to any api replica sharing the Redis is refused while it could still
 * pass the iat check, and forgotten after. Redis rather than process memory because a load balancer sends a
 * replayed proof to any replica. Every proof of every device request passes through here: the SETs of one
 * turn of the event loop go out as one pipeline, so under load one round trip serves many requests.
 *
 * Memory: one key (~90 bytes) per accepted proof, for at most twice the clock skew (2 min by default): a
 * fleet sending N device requests a second holds about 120 x N keys.
 */
export class DpopReplayCache {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  /** True the first time this key's jti is seen within `ttlSeconds`. */
  consume(jkt: string, jti: string, ttlSeconds: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ key: `${this.keyPrefix}dpop:${jkt}:${jti}`, ttl: ttlSeconds, resolve, reject });
      if (this.pending.length >= MAX_BATCH) {
        this.flush();
      } else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const pipeline = this.redis.pipeline();
    for (const p of batch) pipeline.set(p.key, '1', 'EX', p.ttl, 'NX');
    pipeline.exec().then(
      (results) => {
        batch.forEach((p, i) => {
          const [error, reply] = results?.[i] ?? [new Error('no reply from Redis'), null];
          if (error) p.reject(error);
          else p.resolve(reply === 'OK');
        });
      },
      (error: unknown) => {
        for (const p of batch) p.reject(error);
      },
    );
  }
}
