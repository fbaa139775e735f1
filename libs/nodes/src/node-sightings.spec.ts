import { describe, expect, it } from 'vitest';
import { LAST_SEEN_GRANULARITY_MS, NodeSightings } from './node-sightings.js';
import type { NodeRepository } from './node.repository.js';

/** A repository that records the touches it is asked for. */
function recording(): { repo: NodeRepository; touches: Array<[string, string, string]> } {
  const touches: Array<[string, string, string]> = [];
  const repo = {
    touch: (id: string, now: string, since: string) => {
      touches.push([id, now, since]);
      return Promise.resolve();
    },
  } as unknown as NodeRepository;
  return { repo, touches };
}

describe('NodeSightings', () => {
  it('writes a node at most once per granularity, each node on its own', async () => {
    const { repo, touches } = recording();
    const sightings = new NodeSightings(repo);
    const t0 = Date.parse('2026-12-07T12:00:00.000Z');
    await sightings.seen('a', t0);
    await sightings.seen('a', t0 + 1000);
    await sightings.seen('b', t0 + 2000);
    await sightings.seen('a', t0 + LAST_SEEN_GRANULARITY_MS - 1);
    await sightings.seen('a', t0 + LAST_SEEN_GRANULARITY_MS);
    expect(touches.map(([id, now]) => [id, now])).toEqual([
      ['a', '2026-12-07T12:00:00.000Z'],
      ['b', '2026-12-07T12:00:02.000Z'],
      ['a', new Date(t0 + LAST_SEEN_GRANULARITY_MS).toISOString()],
    ]);
    // The update skips a row another process marked within the granularity.
    expect(touches[0]![2]).toBe(new Date(t0 - LAST_SEEN_GRANULARITY_MS).toISOString());
  });
});
