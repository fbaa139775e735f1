/** A node's timestamp as last served, and what it was made from. */
export interface HeldTimestamp {
  generation: number;
  timestampVersion: number;
  rootVersion: number;
  /** Epoch ms at which a role comes within half its lifetime of expiry. */
  freshUntil: number;
  /** Epoch ms of the database read this entry was last found current by. */
  checkedAt: number;
  body: string;
}

/**
 * The last timestamp served to each recently polling node (least recently used dropped first). A poll still
 * reads the assignment generation and the newest timestamp and root versions from the database, so a held
 * copy is served only while all three are unchanged: it saves reading, parsing and checking the node's
 * stored metadata, never at the price of serving anything stale.
 */
export class HeldTimestamps {
  private readonly entries = new Map<string, HeldTimestamp>();

  /** `capacity`: nodes held at most (OTTER_DIRECTOR_HELD_NODES, whose default this is); 0 holds none. */
  constructor(private readonly capacity = 20_000) {}

  get(nodeId: string): HeldTimestamp | undefined {
    const entry = this.entries.get(nodeId);
    if (entry) {
      this.entries.delete(nodeId);
      this.entries.set(nodeId, entry);
    }
    return entry;
  }

  /** The entry without making it the most recently used one. */
  peek(nodeId: string): HeldTimestamp | undefined {
    return this.entries.get(nodeId);
  }

  delete(nodeId: string): void {
    this.entries.delete(nodeId);
  }

  set(nodeId: string, entry: HeldTimestamp): void {
    this.entries.delete(nodeId);
    if (this.capacity === 0) return;
    this.entries.set(nodeId, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}
