import { Injectable } from '@nestjs/common';
import { NodeRepository } from './node.repository.js';

/**
 * How stale a node's last-seen time may be: at most one write per node per five minutes, not one per request
 * (an agent polling every minute would otherwise write on every cycle; 100,000 of them, 1,700 writes a second).
 */
export const LAST_SEEN_GRANULARITY_MS = 5 * 60_000;

/** The most nodes one process remembers having marked; past it, the oldest half is forgotten. */
const REMEMBERED = 200_000;

/**
 * Keeps `nodes.last_seen_at` up to date from authenticated device requests without a write per request: a
 * node is written when this process has not marked it within LAST_SEEN_GRANULARITY_MS, and the update itself
 * skips a row another process marked in that time.
 */
@Injectable()
export class NodeSightings {
  private readonly marked = new Map<string, number>();

  constructor(private readonly nodes: NodeRepository) {}

  async seen(nodeId: string, now = Date.now()): Promise<void> {
    const last = this.marked.get(nodeId);
    if (last !== undefined && now - last < LAST_SEEN_GRANULARITY_MS) return;
    if (this.marked.size >= REMEMBERED) this.forgetOldest();
    this.marked.delete(nodeId);
    this.marked.set(nodeId, now);
    await this.nodes.touch(
      nodeId,
      new Date(now).toISOString(),
      new Date(now - LAST_SEEN_GRANULARITY_MS).toISOString(),
    );
  }

  /** Map order is insertion order, and a mark re-inserts: the first entries are the oldest marks. */
  private forgetOldest(): void {
    let drop = this.marked.size / 2;
    for (const id of this.marked.keys()) {
      if (drop-- <= 0) break;
      this.marked.delete(id);
    }
  }
}
