import { describe, expect, it } from 'vitest';
import type { RolloutDto, RolloutNodeDto } from '#otter/contracts';
import { RolloutWatchModel, progressOf, NODE_PROGRESS_STEPS } from './rollout-watch-model.js';

const AT = '2026-12-07T12:00:00.000Z';
const ids = { rolloutId: 'r1', hardwareId: 'rpi4', at: AT };

function draft(): RolloutWatchModel {
  return new RolloutWatchModel(
    { state: 'draft', stateReason: null, currentWave: 0, progress: [] } as unknown as RolloutDto,
    [],
  );
}

describe('RolloutWatchModel', () => {
  it('follows a rollout from its start to its end through its events', () => {
    const m = draft();
    m.apply({ kind: 'rollout.started', ...ids, nodes: 3, waves: [1, 2] });
    m.apply({ kind: 'rollout.node.admitted', ...ids, nodeId: 'a', wave: 1, fromVersion: '1.0.0' });
    m.apply({ kind: 'rollout.node.step', ...ids, nodeId: 'a', step: 'downloading', version: '2', bytes: 10 });
    expect(m.activeNodes()).toEqual([
      expect.objectContaining({ nodeId: 'a', state: 'downloading', bytes: 10 }),
    ]);
    expect(m.waves()[0]).toMatchObject({ size: 1, finished: 0, inProgress: 1 });
    m.apply({ kind: 'rollout.node.succeeded', ...ids, nodeId: 'a' });
    m.apply({ kind: 'rollout.wave.started', ...ids, wave: 2 });
    m.apply({ kind: 'rollout.node.admitted', ...ids, nodeId: 'b', wave: 2, fromVersion: null });
    m.apply({ kind: 'rollout.node.failed', ...ids, nodeId: 'b', reason: 'deadline' });
    m.apply({ kind: 'rollout.paused', ...ids, reason: 'failure threshold' });
    expect(m.state).toBe('paused');
    expect(m.waves()).toEqual([
      { wave: 0, size: 1, finished: 1, succeeded: 1, failed: 0, inProgress: 0 },
      { wave: 1, size: 2, finished: 1, succeeded: 0, failed: 1, inProgress: 0 },
    ]);
    expect(m.ended).toBe(false);
    m.apply({ kind: 'rollout.aborted', ...ids, reason: 'by ops' });
    expect(m.ended).toBe(true);
  });

  it('starts from the snapshot and never moves a finished node back on a replayed event', () => {
    const nodes: RolloutNodeDto[] = [
      {
        nodeId: 'a',
        wave: 0,
        state: 'succeeded',
        reason: null,
        fromVersion: null,
        admittedAt: AT,
        finishedAt: AT,
        updatedAt: AT,
      },
    ];
    const m = new RolloutWatchModel(
      {
        state: 'running',
        stateReason: null,
        currentWave: 0,
        progress: [{ size: 1 }],
      } as unknown as RolloutDto,
      nodes,
    );
    m.apply({ kind: 'rollout.node.step', ...ids, nodeId: 'a', step: 'downloading', version: '2' });
    expect(m.nodes.get('a')!.state).toBe('succeeded');
    expect(m.activeNodes()).toEqual([]);
    expect(
      m.apply({
        kind: 'release.published',
        hardwareId: 'x',
        releaseId: 'y',
        version: '1',
        length: 1,
        at: AT,
      }),
    ).toBe(false);
  });

  it('fills a node bar by its step, a finished node full', () => {
    expect(progressOf('assigned')).toBeLessThan(progressOf('downloading'));
    expect(progressOf('committed')).toBeLessThan(progressOf('succeeded'));
    expect(progressOf('succeeded')).toBe(NODE_PROGRESS_STEPS);
    expect(progressOf('failed')).toBe(NODE_PROGRESS_STEPS);
  });
});
