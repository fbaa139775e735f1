import { describe, expect, it } from 'vitest';
import { HeldTimestamps, type HeldTimestamp } from './held-timestamps.js';

const entry = (body: string): HeldTimestamp => ({
  generation: 1,
  timestampVersion: 1,
  rootVersion: 1,
  freshUntil: Number.MAX_SAFE_INTEGER,
  checkedAt: 0,
  body,
});

describe('HeldTimestamps', () => {
  it('keeps at most its capacity, dropping the node polled least recently', () => {
    const held = new HeldTimestamps(2);
    held.set('a', entry('a'));
    held.set('b', entry('b'));
    expect(held.get('a')?.body).toBe('a'); // a is now the most recently polled
    held.set('c', entry('c'));
    expect(held.peek('b')).toBeUndefined();
    expect([held.peek('a')?.body, held.peek('c')?.body]).toEqual(['a', 'c']);
  });

  it('peek does not count as a poll', () => {
    const held = new HeldTimestamps(2);
    held.set('a', entry('a'));
    held.set('b', entry('b'));
    held.peek('a');
    held.set('c', entry('c'));
    expect(held.peek('a')).toBeUndefined();
    expect(held.peek('b')?.body).toBe('b');
  });

  it('holds nothing with capacity 0', () => {
    const held = new HeldTimestamps(0);
    held.set('a', entry('a'));
    expect(held.get('a')).toBeUndefined();
  });
});
