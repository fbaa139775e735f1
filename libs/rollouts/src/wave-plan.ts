import { createHash } from 'node:crypto';
import type { WaveSpec } from '#otter/contracts';

/**
 * Splits a rollout's target group into waves: node ids per wave. The order is a hash of (rollout id, node
 * id), stable across restarts and replicas, so early waves are spread across the fleet rather than being the
 * oldest nodes. A wave's `percent` is its own share of the group, rounded up so a small fleet still gets a
 * non-empty first wave; `count` is a number of nodes; the last wave takes every node left.
 */
export function planWaves(
  rolloutId: string,
  nodeIds: readonly string[],
  waves: readonly WaveSpec[],
): string[][] {
  const ordered = nodeIds
    .map((id) => ({ id, key: orderKey(rolloutId, id) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((n) => n.id);
  const total = ordered.length;
  let taken = 0;
  return waves.map((wave, i) => {
    const size =
      i === waves.length - 1
        ? total - taken
        : wave.count !== undefined
          ? wave.count
          : Math.ceil((total * wave.percent!) / 100);
    const ids = ordered.slice(taken, Math.min(total, taken + size));
    taken += ids.length;
    return ids;
  });
}

function orderKey(rolloutId: string, nodeId: string): string {
  return createHash('sha256').update(rolloutId).update('\0').update(nodeId).digest('hex');
}
