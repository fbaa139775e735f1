import type {
  OtterEvent,
  RolloutDto,
  RolloutNodeDto,
  RolloutNodeState,
  RolloutState,
} from '#otter/contracts';

/** Where a node can be in an update, in order: how far its bar is filled. */
const PROGRESS: readonly string[] = [
  'pending',
  'waiting-attestation',
  'assigned',
  'downloading',
  'installed',
  'rebooting',
  'booted',
  'attested',
  'committed',
  'succeeded',
];
export const NODE_PROGRESS_STEPS = PROGRESS.length - 1;

/** States a node does not leave in this rollout. */
const FINISHED: readonly string[] = [
  'succeeded',
  'failed',
  'rolled-back',
  'quarantined',
  'excluded',
  'cancelled',
];

export interface WatchedNode {
  nodeId: string;
  /** 0-based, as RolloutNodeDto has it. */
  wave: number;
  state: RolloutNodeState | string;
  bytes?: number;
  reason?: string;
}

export interface WaveView {
  wave: number;
  size: number;
  finished: number;
  succeeded: number;
  failed: number;
  inProgress: number;
}

/**
 * What `otter rollout watch` shows, built from a snapshot (GET /api/v1/rollouts/:id and its nodes) and then
 * moved on by the rollout's events. Pure: the command draws it.
 */
export class RolloutWatchModel {
  state: RolloutState;
  stateReason: string | null;
  currentWave: number;
  private waveSizes: number[];
  readonly nodes = new Map<string, WatchedNode>();

  constructor(rollout: RolloutDto, nodes: readonly RolloutNodeDto[]) {
    this.state = rollout.state;
    this.stateReason = rollout.stateReason;
    this.currentWave = rollout.currentWave;
    this.waveSizes = rollout.progress.map((p) => p.size);
    for (const n of nodes)
      this.nodes.set(n.nodeId, {
        nodeId: n.nodeId,
        wave: n.wave,
        state: n.state,
        reason: n.reason ?? undefined,
      });
  }

  get ended(): boolean {
    return this.state === 'completed' || this.state === 'aborted';
  }

  /** Applies one event of this rollout; returns whether anything shown changed. */
  apply(e: OtterEvent): boolean {
    switch (e.kind) {
      case 'rollout.started':
        this.state = 'running';
        this.waveSizes = e.waves;
        return true;
      case 'rollout.wave.started':
        this.currentWave = e.wave - 1;
        return true;
      case 'rollout.node.admitted':
        this.setNode(e.nodeId, { state: 'assigned', wave: e.wave - 1 });
        return true;
      case 'rollout.node.step': {
        this.setNode(e.nodeId, {
          state: e.step,
          bytes: e.bytes ?? this.nodes.get(e.nodeId)?.bytes,
          reason: e.reason,
        });
        return true;
      }
      case 'rollout.node.succeeded':
        this.setNode(e.nodeId, { state: 'succeeded' });
        return true;
      case 'rollout.node.failed':
      case 'node.quarantined':
        this.setNode(e.nodeId, {
          state: e.kind === 'node.quarantined' ? 'quarantined' : 'failed',
          reason: e.reason,
        });
        return true;
      case 'rollout.paused':
        this.state = 'paused';
        this.stateReason = e.reason;
        return true;
      case 'rollout.resumed':
        this.state = 'running';
        this.stateReason = null;
        return true;
      case 'rollout.completed':
        this.state = 'completed';
        return true;
      case 'rollout.aborted':
        this.state = 'aborted';
        this.stateReason = e.reason;
        return true;
      default:
        return false;
    }
  }

  waves(): WaveView[] {
    return this.waveSizes.map((size, wave) => {
      const members = [...this.nodes.values()].filter((n) => n.wave === wave);
      const finished = members.filter((n) => FINISHED.includes(n.state)).length;
      const succeeded = members.filter((n) => n.state === 'succeeded').length;
      const inProgress = members.filter(
        (n) => !FINISHED.includes(n.state) && progressOf(n.state) >= 2,
      ).length;
      return { wave, size, finished, succeeded, failed: finished - succeeded, inProgress };
    });
  }

  /** Nodes admitted and not finished: the ones with a bar of their own. */
  activeNodes(): WatchedNode[] {
    return [...this.nodes.values()].filter((n) => !FINISHED.includes(n.state) && progressOf(n.state) >= 2);
  }

  private setNode(nodeId: string, change: Partial<WatchedNode>): void {
    const before = this.nodes.get(nodeId) ?? { nodeId, wave: this.currentWave, state: 'pending' };
    // A finished node stays finished: an older event replayed from the stream does not bring it back.
    if (FINISHED.includes(before.state) && change.state !== undefined && !FINISHED.includes(change.state))
      return;
    this.nodes.set(nodeId, { ...before, ...change });
  }
}

/** How far along a node in `state` is (0 .. NODE_PROGRESS_STEPS). */
export function progressOf(state: string): number {
  const at = PROGRESS.indexOf(state);
  return at < 0 ? NODE_PROGRESS_STEPS : at;
}
