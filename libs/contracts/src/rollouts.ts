/** Rollouts (docs/rollouts.md): the API's request and response shapes. */

export const ROLLOUT_STATES = ['draft', 'running', 'paused', 'completed', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/**
 * Where one node is in a rollout. `pending` waits for its wave; `waiting-attestation` was asked for a fresh
 * attestation; `assigned` has a director assignment; the agent's reports move it through `downloading` to
 * `committed`; it `succeeded` once Otter has a passing attestation with the new release's measurements.
 */
export type RolloutNodeState =
  | 'pending'
  | 'waiting-attestation'
  | 'quarantined'
  | 'assigned'
  | 'downloading'
  | 'installed'
  | 'rebooting'
  | 'booted'
  | 'attested'
  | 'committed'
  | 'succeeded'
  | 'failed'
  | 'rolled-back'
  | 'excluded'
  | 'cancelled';

/** What the agent reports at each step of an update (POST /api/v1/devices/me/updates). */
/** The update steps an agent reports, in the order it goes through them (the last two end a failed attempt). */
export const UPDATE_STEPS = [
  'assigned',
  'downloading',
  'installed',
  'rebooting',
  'booted',
  'attested',
  'committed',
  'rolled-back',
  'failed',
] as const;
export type UpdateStep = (typeof UPDATE_STEPS)[number];

export interface UpdateReport {
  step: UpdateStep;
  /** The release version the step is about. */
  version: string;
  /** The rollout id from the director's correlation id, when there is one. */
  rolloutId?: string;
  bytes?: number;
  slot?: string;
  detail?: string;
  at: string;
}

/** The longest text a node may put in an UpdateReport; longer is refused (400), never cut. */
export const UPDATE_REPORT_LIMITS = { version: 64, slot: 16, detail: 1000 } as const;

export interface WaveSpec {
  /** Share of the target group, 1..100; or `count` nodes. The last wave takes every node left. */
  percent?: number;
  count?: number;
  /** Minimum seconds the wave soaks after it started before the next may start. */
  soakSeconds: number;
}

export interface RolloutSelector {
  labels?: Record<string, string>;
  nodes?: string[];
}

export interface MaintenanceWindow {
  /** UTC `HH:MM`; a window may wrap past midnight. */
  start: string;
  end: string;
}

/** A maintenance window's start or end: UTC `HH:MM`. */
export const WINDOW_TIME_PATTERN = /^(?:[01]\d|2[0-3]):[0-5]\d$/;

/**
 * Why a maintenance window is not one, or undefined. The API and the CLI both refuse what this names: a
 * window that starts when it ends would be either always or never open, and neither is what was meant.
 */
export function maintenanceWindowProblem(window: MaintenanceWindow): string | undefined {
  if (!WINDOW_TIME_PATTERN.test(window.start) || !WINDOW_TIME_PATTERN.test(window.end))
    return 'start and end are UTC times as HH:MM';
  if (window.start === window.end) return 'the window starts and ends at the same time';
  return undefined;
}

export interface CreateRolloutRequest {
  name: string;
  hardwareId: string;
  version: string;
  selector: RolloutSelector;
  waves: WaveSpec[];
  successThreshold: number;
  failureThreshold: number;
  maxAttestationAgeSeconds: number;
  nodeDeadlineSeconds?: number;
  maintenanceWindow?: MaintenanceWindow | null;
  maxConcurrent?: number | null;
}

export interface WaveProgressDto {
  wave: number;
  size: number;
  pending: number;
  inProgress: number;
  succeeded: number;
  failed: number;
  quarantined: number;
  excluded: number;
}

export interface RolloutDto {
  id: string;
  name: string;
  releaseId: string;
  hardwareId: string;
  version: string;
  selector: RolloutSelector;
  waves: WaveSpec[];
  successThreshold: number;
  failureThreshold: number;
  maxAttestationAgeSeconds: number;
  nodeDeadlineSeconds: number;
  maintenanceWindow: MaintenanceWindow | null;
  maxConcurrent: number | null;
  state: RolloutState;
  stateReason: string | null;
  currentWave: number;
  waveStartedAt: string | null;
  progress: WaveProgressDto[];
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RolloutListDto {
  rollouts: RolloutDto[];
}

export interface RolloutNodeDto {
  nodeId: string;
  wave: number;
  state: RolloutNodeState;
  reason: string | null;
  fromVersion: string | null;
  admittedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export interface RolloutNodeListDto {
  nodes: RolloutNodeDto[];
}

/** What a node should do besides polling the director (GET /api/v1/devices/me/instructions). */
export interface DeviceInstructionsDto {
  attest: boolean;
  reason: string | null;
}
