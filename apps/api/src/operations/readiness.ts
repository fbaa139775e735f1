import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthCheckService, HealthIndicatorService, type HealthCheckResult } from '@nestjs/terminus';
import type { Redis } from 'ioredis';
import { DB, pingDatabase, type Db } from '#otter/db';
import { OtterError } from '#otter/errors';
import { IDENTITY_REDIS } from '#otter/identity';
import { BLOB_STORE, type BlobStore } from '#otter/storage';

/** Each dependency gets this long to answer: a probe must answer well within the kubelet's timeout. */
const CHECK_TIMEOUT_MS = 1_000;
/** A key nothing stores: statting it is one round trip to the blob store that reads no data. */
const PROBE_KEY = 'readyz/probe';

/** The api's dependencies, each checked by a round trip: the database, Redis and the blob store. */
@Injectable()
export class Readiness {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly moduleRef: ModuleRef,
    @Inject(DB) private readonly db: Db,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {}

  /** The terminus result when everything answers; else OtterError NOT_READY naming the parts that did not. */
  async check(): Promise<HealthCheckResult> {
    // The identity services' connection (rate limits, DPoP replay cache): the api's Redis traffic goes
    // through it, and it is the one whose loss refuses device requests.
    const redis = this.moduleRef.get<Redis>(IDENTITY_REDIS, { strict: false });
    try {
      return await this.health.check([
        () =>
          this.indicators
            .check('database')
            .attempt(() => pingDatabase(this.db))
            .withTimeout(CHECK_TIMEOUT_MS),
        () =>
          this.indicators
            .check('redis')
            .attempt(async () => {
              await redis.ping();
            })
            .withTimeout(CHECK_TIMEOUT_MS),
        () =>
          this.indicators
            .check('blobStore')
            .attempt(async () => {
              await this.blobs.stat(PROBE_KEY);
            })
            .withTimeout(CHECK_TIMEOUT_MS),
      ]);
    } catch (error) {
      const result = (error as { response?: HealthCheckResult }).response;
      if (!result?.error) throw error;
      const failing = Object.entries(result.error).map(
        ([part, status]) => `${part} (${String((status as { message?: unknown }).message ?? 'down')})`,
      );
      throw new OtterError('NOT_READY', `not ready: ${failing.join(', ')}`, {
        failing: Object.keys(result.error),
        checks: result.details,
      });
    }
  }
}
