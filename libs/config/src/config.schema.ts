import { isIP } from 'node:net';
import { z } from 'zod';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const DAY = 86_400;
const count = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** An address or CIDR range as Fastify's trustProxy takes it, or one of proxy-addr's named ranges. */
function isProxyAddress(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
  const [address, bits, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** Every environment variable Otter reads, with its embedded default. */
export const configSchema = z
  .object({
    OTTER_ENV: z.enum(['development', 'production', 'test']).default('development'),
    OTTER_DATA_DIR: z.string().min(1).default('./.otter'),
    OTTER_HOST: z.string().min(1).default('127.0.0.1'),
    OTTER_PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
    OTTER_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    // TLS terminated by the api itself: both or neither.
    OTTER_TLS_CERT: z.string().min(1).optional(),
    OTTER_TLS_KEY: z.string().min(1).optional(),
    // The URL devices address the api by (behind a proxy: the proxy's); DPoP proofs must name it.
    OTTER_PUBLIC_URL: z
      .url()
      .regex(/^https?:\/\/[^?#]*$/, 'an http:// or https:// URL without query or fragment')
      .optional(),
    // Verify a device's DPoP proof once per connection instead of per request: only where agents connect
    // directly (never through a proxy that pools connections). `auto`: on when the api terminates TLS itself
    // and names no trusted proxy. See docs/attestation.md.
    OTTER_DPOP_CONNECTION_BINDING: z.union([z.literal('auto'), bool]).default('auto'),
    DATABASE_URL: z
      .string()
      .regex(/^(postgres(ql)?:\/\/|sqlite:)/, 'must start with postgres://, postgresql:// or sqlite:')
      .optional(),
    OTTER_QUEUE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/, 'letters, digits, _ and - only')
      .default('otter'),
    REDIS_URL: z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .default('redis://127.0.0.1:6379'),
    OTTER_BLOB_STORE: z.enum(['fs', 's3']).default('fs'),
    OTTER_S3_ENDPOINT: z.url().optional(),
    OTTER_S3_BUCKET: z.string().min(3).optional(),
    OTTER_S3_REGION: z.string().min(1).default('us-east-1'),
    OTTER_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    OTTER_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    OTTER_S3_FORCE_PATH_STYLE: bool.default(true),
    OTTER_KEY_PASSPHRASE: z.string().min(12, 'must be at least 12 characters').optional(),
    OTTER_MAX_UPLOAD_BYTES: z.coerce
      .number()
      .int()
      .positive()
      .default(64 * 1024 ** 3),
    OTTER_TPM_CA_DIR: z.string().min(1).optional(),
    OTTER_PINNED_PCRS: z
      .string()
      .regex(/^\d{1,2}(-\d{1,2})?(,\d{1,2}(-\d{1,2})?)*$/, 'a list like 0-7 or 0,2,4-7')
      .default('0-7'),
    OTTER_DEVICE_CERT_TTL: seconds(90 * DAY),
    OTTER_DEVICE_CA_TTL: seconds(20 * 365 * DAY),
    OTTER_DEVICE_TOKEN_TTL: seconds(600),
    OTTER_ATTESTATION_NONCE_TTL: seconds(120),
    OTTER_ENROLLMENT_TTL: seconds(300),
    OTTER_REENROLL_WINDOW: seconds(DAY),
    OTTER_ATTESTATION_FRESHNESS: seconds(DAY),
    // Flood controls of the unauthenticated device endpoints and retention (docs/attestation.md, "Floods").
    OTTER_MAX_OPEN_ENROLLMENTS: count(1000),
    OTTER_ATTESTATION_NONCES_PER_NODE: count(16),
    OTTER_TRUSTED_PROXIES: z
      .string()
      .transform((text) =>
        text
          .split(',')
          .map((entry) => entry.trim())
          .filter((entry) => entry.length > 0),
      )
      .refine(
        (entries) => entries.every(isProxyAddress),
        'a comma-separated list of IP addresses or CIDR ranges (or loopback, linklocal, uniquelocal)',
      )
      .optional(),
    OTTER_REQUEST_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
    OTTER_RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(DAY).default(60),
    OTTER_RATE_LIMIT_ENROLLMENT_PER_ADDRESS: count(60),
    OTTER_RATE_LIMIT_ENROLLMENT_GLOBAL: count(600),
    OTTER_RATE_LIMIT_LOGIN_PER_ADDRESS: count(3000),
    OTTER_RATE_LIMIT_LOGIN_GLOBAL: count(300_000),
    OTTER_RETENTION_EVERY: seconds(3600),
    OTTER_RETENTION_REPORTS_MAX_AGE: seconds(30 * DAY),
    OTTER_RETENTION_REPORTS_PER_NODE: count(1000),
    OTTER_RETENTION_VERDICTS_MAX_AGE: seconds(90 * DAY),
    OTTER_RETENTION_VERDICTS_PER_NODE: count(1000),
    OTTER_RETENTION_DOWNLOADS_MAX_AGE: seconds(365 * DAY),
    OTTER_RETENTION_DOWNLOADS_PER_NODE: count(1000),
    OTTER_RETENTION_ENROLLMENTS_MAX_AGE: seconds(7 * DAY),
    // The audit log is kept for ever unless an operator sets an age (docs/audit.md): 0 means off.
    OTTER_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(0).max(36500).default(0),
    OTTER_TUF_ROOT_TTL: seconds(365 * DAY),
    OTTER_TUF_TARGETS_TTL: seconds(90 * DAY),
    OTTER_TUF_SNAPSHOT_TTL: seconds(7 * DAY),
    OTTER_TUF_TIMESTAMP_TTL: seconds(DAY),
    OTTER_TUF_BIN_BITS: z.coerce.number().int().min(0).max(10).default(6),
    OTTER_TUF_RESIGN_EVERY: seconds(60),
    OTTER_DIRECTOR_HELD_NODES: z.coerce.number().int().min(0).max(10_000_000).default(20_000),
    OTTER_ROLLOUT_TICK_SECONDS: z.coerce.number().int().min(1).max(3600).default(10),
    OTTER_DELTA_MEMORY_MB: z.coerce.number().int().min(64).max(1_048_576).default(1024),
    OTTER_DELTA_MAX_FRACTION: z.coerce.number().gt(0).max(1).default(0.6),
    OTTER_DELTA_FROM_RECENT: z.coerce.number().int().min(0).max(100).default(3),
    OTTER_DELTA_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
    // Unset: the defaults in libs/queue/src/job-options.ts. Set mainly by tests and impatient deployments.
    OTTER_DELTA_ATTEMPTS: z.coerce.number().int().min(1).max(100).optional(),
    OTTER_DELTA_BACKOFF_MS: z.coerce.number().int().min(1).optional(),
    OTTER_DELTA_LOCK_SECONDS: z.coerce.number().int().min(1).max(3600).optional(),
    // The event stream (docs/events.md): kept this long and at most this many events, whichever is less.
    OTTER_EVENTS_MAX_AGE: seconds(DAY),
    OTTER_EVENTS_MAX_COUNT: z.coerce.number().int().min(100).max(100_000_000).default(100_000),
    OTTER_EVENTS_HEARTBEAT_SECONDS: z.coerce.number().int().min(1).max(300).default(15),
    OTTER_EVENTS_TICKET_TTL: z.coerce.number().int().min(1).max(300).default(30),
    OTTER_DELTA_PUBLISH_DELAY_MS: z.coerce.number().int().min(1).max(600_000).optional(),
    // Prometheus metrics (docs/operations.md): the scheduler's and delta-worker's own port (unset: none).
    OTTER_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).optional(),
    OTTER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
    OTTER_METRICS_TOKEN: z
      .string()
      .regex(/^[\x21-\x7e]{16,256}$/, '16 to 256 printable characters without spaces')
      .optional(),
  })
  .superRefine((env, ctx) => {
    if (env.OTTER_BLOB_STORE === 's3') {
      for (const key of [
        'OTTER_S3_BUCKET',
        'OTTER_S3_ACCESS_KEY_ID',
        'OTTER_S3_SECRET_ACCESS_KEY',
      ] as const) {
        if (!env[key])
          ctx.addIssue({ code: 'custom', path: [key], message: 'required when OTTER_BLOB_STORE=s3' });
      }
    }
    // A device CA issues only while a third of its lifetime is left (libs/identity/src/device-ca-rotation.ts).
    if (env.OTTER_DEVICE_CA_TTL < 3 * env.OTTER_DEVICE_CERT_TTL) {
      ctx.addIssue({
        code: 'custom',
        path: ['OTTER_DEVICE_CA_TTL'],
        message:
          'must be at least 3 × OTTER_DEVICE_CERT_TTL (a device CA issues during the first two thirds of its life)',
      });
    }
    if (!env.OTTER_TLS_CERT !== !env.OTTER_TLS_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: [env.OTTER_TLS_CERT ? 'OTTER_TLS_KEY' : 'OTTER_TLS_CERT'],
        message: 'OTTER_TLS_CERT and OTTER_TLS_KEY go together',
      });
    }
    if (env.OTTER_ENV === 'production' && !env.OTTER_KEY_PASSPHRASE) {
      ctx.addIssue({
        code: 'custom',
        path: ['OTTER_KEY_PASSPHRASE'],
        message: 'required when OTTER_ENV=production (online TUF keys are encrypted with it)',
      });
    }
  });

export type RawConfig = z.infer<typeof configSchema>;
