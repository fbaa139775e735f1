import { describe, expect, it } from 'vitest';
import type { NodeIdentityState } from '#otter/contracts';
import { NODE_TRANSITIONS } from './node-transitions.js';

const STATES: NodeIdentityState[] = ['pending-approval', 'approved', 'active', 'rejected', 'revoked'];
const transitions = Object.values(NODE_TRANSITIONS);

describe('NODE_TRANSITIONS', () => {
  it('has no way out of revoked, so a revoke that succeeded cannot be undone by a racing request', () => {
    expect(transitions.filter((t) => (t.from as readonly string[]).includes('revoked'))).toEqual([]);
  });

  it('lets every other state be revoked', () => {
    expect([...NODE_TRANSITIONS.revoke.from].sort()).toEqual(STATES.filter((s) => s !== 'revoked').sort());
  });

  it('gives an identity only to a node an operator approved (or one renewing it)', () => {
    expect([...NODE_TRANSITIONS.activate.from].sort()).toEqual(['active', 'approved']);
    expect(NODE_TRANSITIONS.activate.to).toBe('active');
  });

  it('leads only to known states', () => {
    for (const t of transitions) {
      expect(STATES).toContain(t.to);
      for (const from of t.from) expect(STATES).toContain(from);
    }
  });
});
