import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { planWaves } from './wave-plan.js';

describe('planWaves', () => {
  const nodes = Array.from({ length: 10 }, () => randomUUID());

  it('gives each wave its own share, rounded up, and the rest to the last wave', () => {
    const waves = planWaves('r1', nodes, [
      { count: 1, soakSeconds: 0 },
      { percent: 25, soakSeconds: 0 },
      { percent: 10, soakSeconds: 0 },
    ]);
    expect(waves.map((w) => w.length)).toEqual([1, 3, 6]);
    expect(waves.flat().sort()).toEqual([...nodes].sort());
  });

  it('is stable for a rollout and differs between rollouts', () => {
    const spec = [
      { percent: 30, soakSeconds: 0 },
      { percent: 100, soakSeconds: 0 },
    ];
    expect(planWaves('r1', nodes, spec)).toEqual(planWaves('r1', [...nodes].reverse(), spec));
    expect(planWaves('r1', nodes, spec)[0]).not.toEqual(planWaves('r2', nodes, spec)[0]);
  });

  it('leaves later waves empty when the early ones take everyone', () => {
    const waves = planWaves('r1', nodes.slice(0, 2), [
      { count: 5, soakSeconds: 0 },
      { percent: 50, soakSeconds: 0 },
    ]);
    expect(waves.map((w) => w.length)).toEqual([2, 0]);
  });
});
