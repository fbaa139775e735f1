type Waiter<V> = { resolve: (value: V | undefined) => void; reject: (error: unknown) => void };

/**
 * Coalesces lookups by key: every get() made in the same turn of the event loop (up to maxKeys keys) is
 * answered by one call of `load`. Under load many requests arrive together, so the cost of the read is
 * shared by more of them the busier the server is.
 */
export class KeyedBatch<K, V> {
  private pending = new Map<K, Array<Waiter<V>>>();
  private scheduled = false;

  constructor(
    private readonly load: (keys: K[]) => Promise<Map<K, V>>,
    private readonly maxKeys = 1000,
  ) {}

  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      if (this.pending.size >= this.maxKeys) {
        this.flush();
      } else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    let loaded: Promise<Map<K, V>>;
    try {
      loaded = this.load([...batch.keys()]);
    } catch (e) {
      loaded = Promise.reject(e);
    }
    loaded.then(
      (found) => {
        for (const [key, waiters] of batch) for (const w of waiters) w.resolve(found.get(key));
      },
      (error: unknown) => {
        for (const waiters of batch.values()) for (const w of waiters) w.reject(error);
      },
    );
  }
}
