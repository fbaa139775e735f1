import { describe, expect, it } from 'vitest';
import { RefusalCoalescer } from './refusal-coalescer.js';

describe('RefusalCoalescer', () => {
  it('admits the first refusal per key in a window and carries the count of the rest to the next row', () => {
    const c = new RefusalCoalescer(1000, 10);
    expect(c.admit('a', 0)).toEqual({ coalesced: 0 });
    for (let i = 1; i <= 50; i++) expect(c.admit('a', i)).toBeNull();
    // Another source is not held back by the first one's flood.
    expect(c.admit('b', 60)).toEqual({ coalesced: 0 });
    // Next window: one row, saying 50 were left out.
    expect(c.admit('a', 1000)).toEqual({ coalesced: 50 });
    expect(c.admit('a', 1001)).toBeNull();
  });

  it('bounds the keys it tracks: a flood from many sources shares one key past the limit', () => {
    const c = new RefusalCoalescer(1000, 3);
    const admitted = Array.from({ length: 1000 }, (_, i) => c.admit(`source-${i}`, 5)).filter(Boolean);
    // Three tracked sources plus the shared key: four rows for a thousand sources in one window.
    expect(admitted).toHaveLength(4);
  });
});
