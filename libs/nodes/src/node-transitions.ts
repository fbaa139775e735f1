import type { NodeIdentityState } from '#otter/contracts';

export interface NodeTransition {
  /** The only states the node may be in for the change to happen. */
  readonly from: readonly NodeIdentityState[];
  readonly to: NodeIdentityState;
}

/**
 * Every change of a node's identity state, defined once. NodeRepository.transition applies one as a single
 * compare-and-set (`UPDATE nodes SET state = to WHERE id = ? AND state IN (from)`), so two requests that race
 * (a revoke and an identity issue) cannot both act on a state that one of them has already changed.
 * `revoked` is terminal: nothing leads out of it, so a revoke that succeeded stays.
 */
export const NODE_TRANSITIONS = {
  approve: { from: ['pending-approval'], to: 'approved' },
  reject: { from: ['pending-approval'], to: 'rejected' },
  revoke: { from: ['pending-approval', 'approved', 'active', 'rejected'], to: 'revoked' },
  /** A device identity issued (or renewed): the node may now take tokens. */
  activate: { from: ['approved', 'active'], to: 'active' },
} as const satisfies Record<string, NodeTransition>;

export type NodeTransitionName = keyof typeof NODE_TRANSITIONS;

/** The states enrollment creates a node in: approved when its EK is on the allow-list. */
export type EnrolledNodeState = Extract<NodeIdentityState, 'pending-approval' | 'approved'>;
