import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';

export interface CachedTimestamp {
  body: string;
  etag: string;
  maxAge: number;
}

// timestamp.json is the one file every agent polls. Holding it for a second keeps the poll path off the
// database; a client can never see it more than a second late, well inside its own max-age.
const HOLD_MS = 1_000;

@Injectable()
export class TimestampCache {
  private cached?: CachedTimestamp & { at: number };
  private pending?: Promise<CachedTimestamp & { at: number }>;

  constructor(@Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository) {}

  async get(): Promise<CachedTimestamp> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < HOLD_MS) return this.cached;
    this.pending ??= this.load(now).finally(() => (this.pending = undefined));
    this.cached = await this.pending;
    return this.cached;
  }

  /** Forgets the held copy: the next request reads the database. */
  invalidate(): void {
    this.cached = undefined;
  }

  private async load(now: number): Promise<CachedTimestamp & { at: number }> {
    const body = await this.repository.metadataFile('timestamp');
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    const expires = Date.parse((JSON.parse(body) as { signed: { expires: string } }).signed.expires);
    // Never let a cache keep a timestamp past its expiry; otherwise a minute is plenty for polling agents.
    const maxAge = Math.max(0, Math.min(60, Math.floor((expires - now) / 1000)));
    return { body, etag, maxAge, at: now };
  }
}
