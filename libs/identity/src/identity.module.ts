import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Inject,
  Injectable,
  Logger,
  Module,
  type DynamicModule,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { Redis } from 'ioredis';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { OnlineKeyStore } from '#otter/tuf-signing';
import { DeviceCertificateAuthority } from './device-certificate-authority.js';
import { DeviceTokenService, type DeviceTokenServiceOptions } from './device-token.service.js';
import { loadOrCreateTokenSigningKey } from './token-signing-key.js';

/** The Redis connection of the identity services (jti replay cache, revoked-node set). */
export const IDENTITY_REDIS = Symbol('IDENTITY_REDIS');
const IDENTITY_KEY_PASSPHRASE = Symbol('IDENTITY_KEY_PASSPHRASE');

/**
 * Token settings a test or an embedding may override; unset, the access token lifetime is the config's
 * OTTER_DEVICE_TOKEN_TTL. Keys, Redis and the clock come from the config.
 */
export type IdentityModuleOptions = Pick<
  DeviceTokenServiceOptions,
  | 'deviceAuthAudience'
  | 'accessTokenAudience'
  | 'clockSkewSeconds'
  | 'maxAssertionLifetimeSeconds'
  | 'accessTokenLifetimeSeconds'
>;

@Injectable()
export class IdentityRedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(IDENTITY_REDIS) private readonly redis: Redis) {}

  /**
   * Resolves once the connection is closed, not merely when Redis answered QUIT (waiting at most a second). A
   * client that never connected (lazy) or is between reconnect attempts is just stopped: nothing to flush, and
   * QUIT would only open a connection.
   */
  async onApplicationShutdown(): Promise<void> {
    const status = this.redis.status;
    if (status === 'end') return;
    const ended = once(this.redis, 'end');
    if (status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
    // Only an open socket still has a close to wait for; a stopped reconnect loop emits nothing more.
    if (status === 'ready' || status === 'connect' || status === 'connecting') {
      await Promise.race([ended, sleep(1000, undefined, { ref: false })]);
    }
  }
}

/**
 * Keeps the device CA ahead of its expiry while no node happens to ask for a certificate: every twentieth of
 * the CA lifetime (between 1 s and 1 h) it lets the CA rotate, retire and republish its trust bundle, so a
 * successor is published well before it signs anything (device-ca-rotation.ts).
 */
@Injectable()
export class DeviceCaMaintenance implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('DeviceCa');
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly ca: DeviceCertificateAuthority,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.schedule();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    const every = Math.min(3_600_000, Math.max(1000, (this.config.devices.caTtl * 1000) / 20));
    this.timer = setTimeout(() => {
      this.ca
        .maintain()
        .catch((e: unknown) =>
          this.logger.warn(`device CA maintenance failed: ${e instanceof Error ? e.message : String(e)}`),
        )
        .finally(() => this.schedule());
    }, every);
    // Never what keeps a process alive.
    this.timer.unref();
  }
}

function createRedis(url: string): Redis {
  const logger = new Logger('IdentityRedis');
  // Lazy: a process that fails to boot (say, a wrong passphrase) leaves no socket and no reconnect loop behind.
  const redis = new Redis(url, {
    connectionName: 'otter-identity',
    maxRetriesPerRequest: 3,
    lazyConnect: true,
  });
  let last: string | undefined;
  // One line per distinct problem, not one per reconnect attempt. The message names host and port, never the URL.
  redis.on('error', (e: Error) => {
    if (e.message !== last) logger.warn(`redis: ${e.message}`);
    last = e.message;
  });
  redis.on('ready', () => (last = undefined));
  return redis;
}

/**
 * Provides DeviceCertificateAuthority and DeviceTokenService. Both keys live in `<dataDir>/keys/`, sealed with
 * OTTER_KEY_PASSPHRASE (or the development passphrase), and are created at boot if missing, so two processes
 * starting together settle on one CA and one token key. Redis keys are prefixed `<OTTER_QUEUE_PREFIX>:`.
 */
@Module({})
export class IdentityModule {
  static forRoot(options: IdentityModuleOptions = {}): DynamicModule {
    return {
      module: IdentityModule,
      providers: [
        {
          provide: IDENTITY_REDIS,
          inject: [OTTER_CONFIG],
          useFactory: (config: OtterConfig): Redis => createRedis(config.redisUrl),
        },
        IdentityRedisLifecycle,
        {
          provide: IDENTITY_KEY_PASSPHRASE,
          inject: [OTTER_CONFIG],
          useFactory: (config: OtterConfig): Promise<string> => keyPassphrase(config),
        },
        {
          provide: DeviceCertificateAuthority,
          inject: [OTTER_CONFIG, IDENTITY_KEY_PASSPHRASE],
          useFactory: async (
            config: OtterConfig,
            passphrase: string,
          ): Promise<DeviceCertificateAuthority> => {
            const logger = new Logger('DeviceCa');
            const ca = new DeviceCertificateAuthority({
              dataDir: config.dataDir,
              passphrase,
              caLifetimeSeconds: config.devices.caTtl,
              onEvent: (event) =>
                logger.log(
                  { generation: event.generation, notAfter: event.notAfter.toISOString() },
                  event.kind === 'created'
                    ? 'device CA generation created'
                    : 'expired device CA generation retired',
                ),
            });
            // Created (or opened) at boot: a wrong passphrase stops the process here, not at the first enrollment.
            await ca.certificatePem();
            return ca;
          },
        },
        DeviceCaMaintenance,
        {
          provide: DeviceTokenService,
          inject: [OTTER_CONFIG, IDENTITY_KEY_PASSPHRASE, IDENTITY_REDIS],
          useFactory: async (
            config: OtterConfig,
            passphrase: string,
            redis: Redis,
          ): Promise<DeviceTokenService> =>
            new DeviceTokenService(redis, {
              ...options,
              accessTokenLifetimeSeconds: options.accessTokenLifetimeSeconds ?? config.devices.accessTokenTtl,
              signingKey: await loadOrCreateTokenSigningKey(config.dataDir, passphrase),
              keyPrefix: `${config.queuePrefix}:`,
            }),
        },
      ],
      exports: [DeviceCertificateAuthority, DeviceTokenService, IDENTITY_REDIS],
    };
  }
}

/**
 * OnlineKeyStore.passphraseFor creates the development passphrase file with O_EXCL and then writes it, so a
 * process reading it in between sees an empty file; never seal a key with that, read again instead.
 */
async function keyPassphrase(config: OtterConfig): Promise<string> {
  const logger = new Logger('IdentityKeys');
  for (let attempt = 0; attempt < 50; attempt++) {
    const passphrase = await OnlineKeyStore.passphraseFor(config.dataDir, config.keyPassphrase, logger);
    if (passphrase) return passphrase;
    await sleep(20);
  }
  throw new Error(`the key passphrase file in ${config.dataDir}/keys is empty`);
}
