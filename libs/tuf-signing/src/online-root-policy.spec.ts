import { describe, expect, it } from 'vitest';
import { onlineRootProblems } from './online-root-policy.js';
import type { RootSigned } from './tuf-types.js';

function root(roles: Partial<Record<'root' | 'targets' | 'snapshot' | 'timestamp', string[]>>): RootSigned {
  const role = (keyids: string[] = []) => ({ keyids, threshold: 1 });
  return {
    _type: 'root',
    spec_version: '1.0.31',
    version: 2,
    expires: '2030-01-01T00:00:00Z',
    consistent_snapshot: true,
    keys: {},
    roles: {
      root: role(roles.root ?? ['r1']),
      targets: role(roles.targets),
      snapshot: role(roles.snapshot),
      timestamp: role(roles.timestamp),
    },
  };
}

describe('onlineRootProblems', () => {
  const held = new Set(['t1', 's1', 'ts1', 'ts2']);

  it('accepts a root whose online keys are all held, old and new during a rotation', () => {
    expect(
      onlineRootProblems(root({ targets: ['t1'], snapshot: ['s1'], timestamp: ['ts1', 'ts2'] }), held),
    ).toEqual([]);
  });

  it('refuses a role with no held key, a key another repository holds, and an online key used as a root key', () => {
    expect(
      onlineRootProblems(root({ targets: ['t1'], snapshot: ['other'], timestamp: ['ts1'] }), held),
    ).toEqual([
      'Otter holds no private key for the snapshot role it names',
      'the snapshot role names key other…, which this repository does not hold',
    ]);
    // Listing the director's timestamp key next to the image repository's own would let a stolen director
    // key sign image timestamps.
    expect(
      onlineRootProblems(
        root({ targets: ['t1'], snapshot: ['s1'], timestamp: ['ts1', 'director-ts'] }),
        held,
      ),
    ).toEqual(['the timestamp role names key director-ts…, which this repository does not hold']);
    expect(
      onlineRootProblems(root({ root: ['t1'], targets: ['t1'], snapshot: ['s1'], timestamp: ['ts1'] }), held),
    ).toEqual(['an online key must never be a root key']);
  });
});
