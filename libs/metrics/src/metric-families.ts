/**
 * Every metric family Otter exports, defined once: each process registers the ones it serves through
 * OtterMetrics, and deploy/ (dashboards, alert rules) may use only these names (test/deploy.spec.ts).
 */
export interface FamilyDefinition<L extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
}

export interface HistogramDefinition<L extends string = string> extends FamilyDefinition<L> {
  readonly buckets: readonly number[];
}

const PREFIX = 'otter_';

/** Seconds from 1 ms to 10 s: HTTP requests and short jobs. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds from 10 ms to 1 h: queue jobs (a delta build's extent can take minutes). */
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600];

function family<L extends string>(name: string, help: string, labelNames: readonly L[]): FamilyDefinition<L> {
  return { name: PREFIX + name, help, labelNames };
}

function histogram<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[],
  buckets: readonly number[],
): HistogramDefinition<L> {
  return { name: PREFIX + name, help, labelNames, buckets };
}

export const METRICS = {
  httpRequestDuration: histogram(
    'http_request_duration_seconds',
    'HTTP requests served by the api, by method, route template and status code.',
    ['method', 'route', 'status'],
    LATENCY_BUCKETS,
  ),
  nodes: family(
    'nodes',
    'Nodes by hardware id, identity state, running version and attestation status, as GET /api/v1/nodes ' +
      '?attestation= means it: passed (last verdict passed within OTTER_ATTESTATION_FRESHNESS), stale (passed, ' +
      'longer ago), failed (last verdict failed), never.',
    ['hardware_id', 'state', 'running_version', 'attestation'],
  ),
  rollouts: family('rollouts', 'Rollouts by state.', ['state']),
  rolloutWaveNodes: family(
    'rollout_wave_nodes',
    'Nodes of each unfinished rollout (draft, running, paused) by wave and node state.',
    ['rollout_id', 'rollout_name', 'wave', 'state'],
  ),
  queueJobs: family(
    'queue_jobs',
    'BullMQ jobs by queue and state (waiting, active, delayed, failed), read from Redis at scrape time.',
    ['queue', 'state'],
  ),
  queueJobDuration: histogram(
    'queue_job_duration_seconds',
    'BullMQ jobs processed by this process, by queue, job name and outcome (completed, failed).',
    ['queue', 'job', 'outcome'],
    JOB_BUCKETS,
  ),
  deltaBuilds: family(
    'delta_builds',
    'Delta builds by state (queued, building, verifying, stored, published, too-large, failed).',
    ['state'],
  ),
  deltaBuildBytesSaved: family(
    'delta_build_bytes_saved',
    'Bytes a published delta saves over its full image (sum over published patches), by hardware id.',
    ['hardware_id'],
  ),
  deltaDownloadBytesSaved: family(
    'delta_download_bytes_saved_total',
    'Bytes nodes did not download thanks to deltas (full image bytes minus bytes downloaded), counted as ' +
      'this api records their download reports, by hardware id.',
    ['hardware_id'],
  ),
  attestationVerifications: family(
    'attestation_verifications_total',
    'Attestation verdicts this api recorded, by outcome (passed, failed).',
    ['outcome'],
  ),
  tufRoleExpiry: family(
    'tuf_role_expiry_seconds',
    'Seconds until the latest version of each TUF role expires (negative: expired). Repository image, or ' +
      'director: the soonest expiry over every node (and the shared root).',
    ['repository', 'role'],
  ),
  schedulerTickDuration: histogram(
    'scheduler_tick_duration_seconds',
    'Duration of rollout ticks run by this scheduler, by outcome (ok, error).',
    ['outcome'],
    LATENCY_BUCKETS,
  ),
} as const;

/** The prefix of Node.js process metrics (prom-client's default metrics) in every registry. */
export const PROCESS_METRICS_PREFIX = PREFIX;
