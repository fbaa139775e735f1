import { createHash } from 'node:crypto';
import { DELTA_FORMAT_VERSION } from '#otter/delta';

/** The container format named in every published delta's custom metadata. */
export const DELTA_TARGET_FORMAT = `otter-delta-v${DELTA_FORMAT_VERSION}`;

/**
 * One build per (hardware, source image, target image): the row id and the plan job id. BullMQ refuses ':' in
 * custom job ids, hence '-' (hardware ids, sha256 hex and these words never contain ':').
 */
export function deltaBuildId(hardwareId: string, fromSha256: string, toSha256: string): string {
  return `delta-${hardwareId}-${fromSha256}-${toSha256}`;
}

/** The published target: `deltas/{hardware}/{from version}-{to version}.delta`. */
export function deltaTargetPath(hardwareId: string, fromVersion: string, toVersion: string): string {
  return `deltas/${hardwareId}/${fromVersion}-${toVersion}.delta`;
}

/** Where a verified patch lives: named by its own sha256, so a rerun stores the same bytes under the same key. */
export function deltaBlobKey(patchSha256: string): string {
  return `deltas/sha256/${patchSha256}`;
}

/**
 * Intermediate results of one build (the plan, one built operation per extent), keyed by the plan's hash:
 * a rerun of the same plan finds and reuses them, a different plan (another memory budget) never does.
 */
export function deltaWorkKeys(
  buildId: string,
  planSha256: string,
): {
  plan: string;
  extent: (item: number) => string;
} {
  const dir = `delta-work/${buildId}/${planSha256.slice(0, 16)}`;
  return { plan: `${dir}/plan.json`, extent: (item) => `${dir}/extent-${item}` };
}

/** Job ids of a build's flow, derived from the build id and the plan hash so a re-added flow is a no-op. */
export function deltaFlowJobIds(
  buildId: string,
  planSha256: string,
): { assemble: string; extent: (item: number) => string } {
  const tag = planSha256.slice(0, 16);
  return {
    assemble: `${buildId}-${tag}-assemble`,
    extent: (item) => `${buildId}-${tag}-extent-${item}`,
  };
}

/** Publish jobs are debounced per time bucket: every patch verified within one bucket shares one job. */
export function deltaPublishJob(now: number, delayMs: number): { jobId: string; delay: number } {
  const bucket = Math.floor(now / delayMs) + 1;
  return { jobId: `delta-publish-${bucket}`, delay: bucket * delayMs - now };
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
