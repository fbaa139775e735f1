import type { RolloutNodeState, RolloutState, UpdateStep } from '#otter/contracts';

/** Node states that hold a director assignment and count against maxConcurrent. */
export const IN_PROGRESS: readonly RolloutNodeState[] = [
  'assigned',
  'downloading',
  'installed',
  'rebooting',
  'booted',
  'attested',
  'committed',
];

/** Node states that end a node's part in a rollout. */
export const FINISHED: readonly RolloutNodeState[] = [
  'succeeded',
  'failed',
  'rolled-back',
  'quarantined',
  'excluded',
  'cancelled',
];

/** Failures count against the failure threshold; quarantine (a node that cannot prove its boot) does not. */
export const FAILED: readonly RolloutNodeState[] = ['failed', 'rolled-back'];

/** Rollouts that still own their nodes (rollout_memberships rows). */
export const UNFINISHED: readonly RolloutState[] = ['draft', 'running', 'paused'];

/** The node state an agent's report moves an in-progress node to. */
export function stateAfter(step: UpdateStep): RolloutNodeState {
  switch (step) {
    case 'rolled-back':
      return 'rolled-back';
    default:
      return step;
  }
}

/** Steps must not move a node backwards (a late, reordered report is recorded but changes nothing). */
const STEP_ORDER: Record<string, number> = {
  assigned: 0,
  downloading: 1,
  installed: 2,
  rebooting: 3,
  booted: 4,
  attested: 5,
  committed: 6,
};

export function isForward(from: RolloutNodeState, to: RolloutNodeState): boolean {
  if (FINISHED.includes(from)) return false;
  if (to === 'failed' || to === 'rolled-back') return true;
  return (STEP_ORDER[to] ?? -1) > (STEP_ORDER[from] ?? -1);
}
