import type { DefaultJobOptions, WorkerOptions } from 'bullmq';

/** Retries and backoff for every queue, set in one file. */
export const DEFAULT_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2_000 },
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 5_000 },
};

/** Overrides a deployment (or a test) may set through OTTER_DELTA_ATTEMPTS / _BACKOFF_MS / _LOCK_SECONDS. */
export interface DeltaJobTuning {
  attempts?: number;
  backoffMs?: number;
  lockSeconds?: number;
  publishDelayMs?: number;
}

/**
 * Every delta-build job (plan, extent, assemble, publish). Transient faults (Redis, S3, a worker restart)
 * get 5 attempts over about 2.5 minutes (10 s, 20 s, 40 s, 80 s); a build that still fails is marked failed
 * with the last reason. Completed and failed jobs are kept for a while: a kept job id makes a repeated
 * trigger of the same pair a no-op, and a kept failed job shows its reason in BullMQ tools too.
 */
export function deltaJobOptions(tuning: DeltaJobTuning = {}): DefaultJobOptions {
  return {
    attempts: tuning.attempts ?? 5,
    backoff: { type: 'exponential', delay: tuning.backoffMs ?? 10_000 },
    removeOnComplete: { age: 7 * 86_400, count: 10_000 },
    removeOnFail: { age: 30 * 86_400, count: 10_000 },
  };
}

/** How long a verified patch waits for others before one publish job signs them all (one snapshot). */
export function deltaPublishDelayMs(tuning: DeltaJobTuning = {}): number {
  return tuning.publishDelayMs ?? 2_000;
}

/**
 * Worker settings for the delta-build queue. bsdiff runs on the libuv pool and planning yields every MiB, so a
 * live worker renews its lock (every lockDuration / 2) even in the middle of a long extent. A worker that dies
 * stops renewing: its job's lock expires after lockDuration (30 s) and the next stalled check (every
 * stalledInterval, 15 s) on any worker moves the job back to waiting, so a killed job restarts within ~45 s.
 * maxStalledCount 2: a job that takes its worker down twice (say, the OOM killer) fails instead of looping.
 */
export function deltaWorkerOptions(
  tuning: DeltaJobTuning = {},
): Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'> {
  const lockDuration = (tuning.lockSeconds ?? 30) * 1000;
  return { lockDuration, stalledInterval: Math.max(500, lockDuration / 2), maxStalledCount: 2 };
}

/**
 * Rollout ticks are idempotent and the next repeat comes soon: one attempt, no backoff; a failed tick is kept
 * a while so its reason shows in BullMQ tools.
 */
export const ROLLOUT_TICK_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 1,
  removeOnComplete: { count: 100 },
  removeOnFail: { age: 86_400, count: 1_000 },
};

/**
 * Retention purges are idempotent and the next repeat comes within OTTER_RETENTION_EVERY: one attempt; a
 * failed purge is kept a while so its reason shows in BullMQ tools.
 */
export const RETENTION_PURGE_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 1,
  removeOnComplete: { count: 100 },
  removeOnFail: { age: 7 * 86_400, count: 1_000 },
};

/** Events within this long of each other share one immediate tick. */
export const ROLLOUT_TICK_DEDUPLICATION_MS = 500;
