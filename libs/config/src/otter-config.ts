import { resolve, join } from 'node:path';
import { configSchema } from './config.schema.js';

export interface S3Config {
  endpoint?: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
}

export type DatabaseConfig = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };

export interface TufConfig {
  rootTtl: number;
  targetsTtl: number;
  snapshotTtl: number;
  timestampTtl: number;
  binBits: number;
  resignEvery: number;
  /**
   * Nodes whose last director timestamp one api process keeps (about 1 KiB each), least recently polled
   * dropped first; see docs/tuf.md, "The poll path".
   */
  directorHeldNodes: number;
}

/** The validated configuration of one Otter process. */
export interface OtterConfig {
  env: 'development' | 'production' | 'test';
  dataDir: string;
  host: string;
  port: number;
  logLevel: string;
  /** Certificate chain and key files (PEM) when the api terminates TLS itself. */
  tls?: { certFile: string; keyFile: string };
  /** Base URL devices address the api by, without a trailing slash; unset: the request's own origin. */
  publicUrl?: string;
  /**
   * A connection that proved possession of a device key is bound to it (agents connect directly): set, or by
   * default when the api terminates TLS itself and trusts no proxy (directTlsClients).
   */
  dpopConnectionBinding: boolean;
  database: DatabaseConfig;
  redisUrl: string;
  /** Key prefix of every BullMQ queue, so deployments (and parallel test runs) can share one Redis. */
  queuePrefix: string;
  blobStore: { kind: 'fs'; dir: string } | { kind: 's3'; s3: S3Config };
  keyPassphrase?: string;
  maxUploadBytes: number;
  tuf: TufConfig;
  devices: DeviceConfig;
  delta: DeltaConfig;
  rollouts: RolloutConfig;
  http: HttpConfig;
  rateLimits: RateLimitConfig;
  retention: RetentionConfig;
  metrics: MetricsConfig;
  events: EventsConfig;
}

/** Prometheus metrics (libs/metrics; docs/operations.md). */
export interface MetricsConfig {
  /** The scheduler's and delta-worker's metrics port; unset: they serve none. The api serves /metrics itself. */
  port?: number;
  host: string;
  /** When set, every scrape must send `Authorization: Bearer <token>`. */
  token?: string;
}

/** The event stream (libs/events, GET /api/v1/events); see docs/events.md. */
export interface EventsConfig {
  /** Events older than this are trimmed from the stream (approximately: Redis trims whole nodes). */
  maxAgeSeconds: number;
  /** At most about this many events are kept, whatever their age. */
  maxCount: number;
  /** Seconds between the SSE comment lines that keep an idle connection open. */
  heartbeatSeconds: number;
  /** Lifetime of a single-use ticket from POST /api/v1/events/tickets. */
  ticketTtlSeconds: number;
}

/** The api's HTTP server (apps/api/src/create-api.ts); see docs/attestation.md, "Floods". */
export interface HttpConfig {
  /** Peers whose X-Forwarded-For is believed (Fastify trustProxy); empty: nobody's. */
  trustedProxies: string[];
  /** A request whose headers and body have not all arrived within this long is answered 408 and cut off. */
  requestTimeoutSeconds: number;
}

/** Requests allowed per window, per source address and over all addresses (shared through Redis). */
export interface RateLimit {
  perAddress: number;
  global: number;
}

/** Rate limits of the unauthenticated device endpoints (apps/api/src/devices). */
export interface RateLimitConfig {
  windowSeconds: number;
  /** Enrollment start and activation, each route counted on its own. */
  enrollment: RateLimit;
  /** Identity issuance and token exchange, each route counted on its own. */
  deviceLogin: RateLimit;
}

/** How long, and how many per node, rows of what devices write are kept (libs/retention). */
export interface RetentionConfig {
  /** Seconds between the scheduler's purges. */
  every: number;
  reports: { maxAgeSeconds: number; perNode: number };
  verdicts: { maxAgeSeconds: number; perNode: number };
  downloads: { maxAgeSeconds: number; perNode: number };
  /** Enrollments are deleted this long after they expired. */
  enrollmentsMaxAgeSeconds: number;
  /** Audit rows older than this many days are purged; null keeps them for ever (the default). */
  auditMaxAgeDays: number | null;
}

/** Rollouts (libs/rollouts, apps/scheduler); see docs/rollouts.md. */
export interface RolloutConfig {
  /** Seconds between the scheduler's repeatable ticks (events also trigger an immediate one). */
  tickSeconds: number;
}

/** Delta builds (apps/delta-worker, libs/delta-builds); see docs/deltas.md. */
export interface DeltaConfig {
  /** What the builder may allocate in one worker process, shared by its concurrent jobs. */
  memoryBudgetBytes: number;
  /** A patch larger than this fraction of the full image is not published. */
  maxFraction: number;
  /** On a new release, deltas are built from this many of the hardware id's most recent earlier releases. */
  fromRecent: number;
  /** Jobs one worker process runs at once. */
  workerConcurrency: number;
  /** Overrides of the retry and lock defaults in libs/queue/src/job-options.ts; undefined = the default. */
  attempts?: number;
  backoffMs?: number;
  lockSeconds?: number;
  publishDelayMs?: number;
}

export interface DeviceConfig {
  /** Directory of trusted TPM manufacturer CA certificates (PEM), for EK certificate chains. */
  tpmCaDir: string;
  /** Firmware and boot PCRs pinned at enrollment; changing them needs an operator re-pin. */
  pinnedPcrs: number[];
  /** Lifetime of a device certificate, seconds; agents renew at about two thirds of it. */
  certificateTtl: number;
  /** Lifetime of each device CA certificate, seconds; the CA rotates ahead of it (docs/attestation.md). */
  caTtl: number;
  accessTokenTtl: number;
  nonceTtl: number;
  enrollmentTtl: number;
  /** Seconds an admin's `otter node re-enroll` leaves the node's own TPM to enroll again. */
  reenrollWindow: number;
  /** Seconds a passing verdict counts as fresh in node views (older: `stale`); rollouts set their own. */
  attestationFreshness: number;
  /** Open (challenged, unexpired) enrollments at once; past it a new enrollment is refused with 503. */
  maxOpenEnrollments: number;
  /** Unused attestation nonces one node may hold; a new challenge drops its oldest beyond this. */
  noncesPerNode: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid Otter configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): OtterConfig {
  const parsed = configSchema.safeParse(stripEmpty(env));
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  const e = parsed.data;
  const dataDir = resolve(e.OTTER_DATA_DIR);
  const dbUrl = e.DATABASE_URL;
  return {
    env: e.OTTER_ENV,
    dataDir,
    host: e.OTTER_HOST,
    port: e.OTTER_PORT,
    logLevel: e.OTTER_LOG_LEVEL,
    tls:
      e.OTTER_TLS_CERT && e.OTTER_TLS_KEY
        ? { certFile: resolve(e.OTTER_TLS_CERT), keyFile: resolve(e.OTTER_TLS_KEY) }
        : undefined,
    publicUrl: e.OTTER_PUBLIC_URL?.replace(/\/+$/, ''),
    dpopConnectionBinding:
      e.OTTER_DPOP_CONNECTION_BINDING === 'auto'
        ? directTlsClients(e.OTTER_TLS_CERT, e.OTTER_TRUSTED_PROXIES)
        : e.OTTER_DPOP_CONNECTION_BINDING,
    database:
      dbUrl && !dbUrl.startsWith('sqlite:')
        ? { dialect: 'postgres', url: dbUrl }
        : {
            dialect: 'sqlite',
            file: dbUrl ? resolve(dbUrl.slice('sqlite:'.length)) : join(dataDir, 'otter.sqlite'),
          },
    redisUrl: e.REDIS_URL,
    queuePrefix: e.OTTER_QUEUE_PREFIX,
    blobStore:
      e.OTTER_BLOB_STORE === 's3'
        ? {
            kind: 's3',
            s3: {
              endpoint: e.OTTER_S3_ENDPOINT,
              bucket: e.OTTER_S3_BUCKET as string,
              region: e.OTTER_S3_REGION,
              accessKeyId: e.OTTER_S3_ACCESS_KEY_ID as string,
              secretAccessKey: e.OTTER_S3_SECRET_ACCESS_KEY as string,
              forcePathStyle: e.OTTER_S3_FORCE_PATH_STYLE,
            },
          }
        : { kind: 'fs', dir: join(dataDir, 'blobs') },
    keyPassphrase: e.OTTER_KEY_PASSPHRASE,
    maxUploadBytes: e.OTTER_MAX_UPLOAD_BYTES,
    devices: {
      tpmCaDir: resolve(e.OTTER_TPM_CA_DIR ?? join(dataDir, 'tpm-ca')),
      pinnedPcrs: parsePcrList(e.OTTER_PINNED_PCRS),
      certificateTtl: e.OTTER_DEVICE_CERT_TTL,
      caTtl: e.OTTER_DEVICE_CA_TTL,
      accessTokenTtl: e.OTTER_DEVICE_TOKEN_TTL,
      nonceTtl: e.OTTER_ATTESTATION_NONCE_TTL,
      enrollmentTtl: e.OTTER_ENROLLMENT_TTL,
      reenrollWindow: e.OTTER_REENROLL_WINDOW,
      attestationFreshness: e.OTTER_ATTESTATION_FRESHNESS,
      maxOpenEnrollments: e.OTTER_MAX_OPEN_ENROLLMENTS,
      noncesPerNode: e.OTTER_ATTESTATION_NONCES_PER_NODE,
    },
    metrics: {
      port: e.OTTER_METRICS_PORT,
      host: e.OTTER_METRICS_HOST,
      token: e.OTTER_METRICS_TOKEN,
    },
    http: {
      trustedProxies: e.OTTER_TRUSTED_PROXIES ?? [],
      requestTimeoutSeconds: e.OTTER_REQUEST_TIMEOUT_SECONDS,
    },
    rateLimits: {
      windowSeconds: e.OTTER_RATE_LIMIT_WINDOW_SECONDS,
      enrollment: {
        perAddress: e.OTTER_RATE_LIMIT_ENROLLMENT_PER_ADDRESS,
        global: e.OTTER_RATE_LIMIT_ENROLLMENT_GLOBAL,
      },
      deviceLogin: {
        perAddress: e.OTTER_RATE_LIMIT_LOGIN_PER_ADDRESS,
        global: e.OTTER_RATE_LIMIT_LOGIN_GLOBAL,
      },
    },
    retention: {
      every: e.OTTER_RETENTION_EVERY,
      reports: {
        maxAgeSeconds: e.OTTER_RETENTION_REPORTS_MAX_AGE,
        perNode: e.OTTER_RETENTION_REPORTS_PER_NODE,
      },
      verdicts: {
        maxAgeSeconds: e.OTTER_RETENTION_VERDICTS_MAX_AGE,
        perNode: e.OTTER_RETENTION_VERDICTS_PER_NODE,
      },
      downloads: {
        maxAgeSeconds: e.OTTER_RETENTION_DOWNLOADS_MAX_AGE,
        perNode: e.OTTER_RETENTION_DOWNLOADS_PER_NODE,
      },
      enrollmentsMaxAgeSeconds: e.OTTER_RETENTION_ENROLLMENTS_MAX_AGE,
      auditMaxAgeDays: e.OTTER_AUDIT_RETENTION_DAYS > 0 ? e.OTTER_AUDIT_RETENTION_DAYS : null,
    },
    events: {
      maxAgeSeconds: e.OTTER_EVENTS_MAX_AGE,
      maxCount: e.OTTER_EVENTS_MAX_COUNT,
      heartbeatSeconds: e.OTTER_EVENTS_HEARTBEAT_SECONDS,
      ticketTtlSeconds: e.OTTER_EVENTS_TICKET_TTL,
    },
    delta: {
      memoryBudgetBytes: e.OTTER_DELTA_MEMORY_MB * 1024 * 1024,
      maxFraction: e.OTTER_DELTA_MAX_FRACTION,
      fromRecent: e.OTTER_DELTA_FROM_RECENT,
      workerConcurrency: e.OTTER_DELTA_WORKER_CONCURRENCY,
      attempts: e.OTTER_DELTA_ATTEMPTS,
      backoffMs: e.OTTER_DELTA_BACKOFF_MS,
      lockSeconds: e.OTTER_DELTA_LOCK_SECONDS,
      publishDelayMs: e.OTTER_DELTA_PUBLISH_DELAY_MS,
    },
    rollouts: { tickSeconds: e.OTTER_ROLLOUT_TICK_SECONDS },
    tuf: {
      rootTtl: e.OTTER_TUF_ROOT_TTL,
      targetsTtl: e.OTTER_TUF_TARGETS_TTL,
      snapshotTtl: e.OTTER_TUF_SNAPSHOT_TTL,
      timestampTtl: e.OTTER_TUF_TIMESTAMP_TTL,
      binBits: e.OTTER_TUF_BIN_BITS,
      resignEvery: e.OTTER_TUF_RESIGN_EVERY,
      directorHeldNodes: e.OTTER_DIRECTOR_HELD_NODES,
    },
  };
}

function parsePcrList(text: string): number[] {
  const pcrs = new Set<number>();
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    for (let i = a; i <= (b ?? a); i++) if (i <= 23) pcrs.add(i);
  }
  return [...pcrs].sort((x, y) => x - y);
}

// An exported-but-empty variable (`FOO=`) means "unset", as in most twelve-factor tools.
function stripEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((kv): kv is [string, string] => !!kv[1]));
}

/**
 * Whether every connection the api accepts is one client's own, as far as the configuration tells: the api
 * terminates TLS itself (so nothing in front of it can pool many clients' requests on one connection without
 * also terminating and re-encrypting TLS) and no proxy is declared trusted (a declared proxy speaks for many
 * clients). A re-encrypting proxy that adds no Forwarded / X-Forwarded-* / Via header and is not declared would
 * defeat this: docs/attestation.md says to set OTTER_DPOP_CONNECTION_BINDING=false there.
 */
function directTlsClients(
  tlsCert: string | undefined,
  trustedProxies: readonly string[] | undefined,
): boolean {
  return tlsCert !== undefined && (trustedProxies ?? []).length === 0;
}
