import { describe, expect, it } from 'vitest';
import { KeyedBatch } from './keyed-batch.js';

describe('KeyedBatch', () => {
  it('answers every lookup of one event-loop turn with one load, each key once', async () => {
    const loads: string[][] = [];
    const batch = new KeyedBatch<string, number>(async (keys) => {
      loads.push(keys);
      return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.length]));
    });
    const answers = await Promise.all([
      batch.get('a'),
      batch.get('bb'),
      batch.get('a'),
      batch.get('missing'),
    ]);
    expect(answers).toEqual([1, 2, 1, undefined]);
    expect(loads).toEqual([['a', 'bb', 'missing']]);
    expect(await batch.get('ccc')).toBe(3);
    expect(loads).toHaveLength(2);
  });

  it('loads at once when maxKeys keys are waiting', async () => {
    const sizes: number[] = [];
    const batch = new KeyedBatch<number, number>(async (keys) => {
      sizes.push(keys.length);
      return new Map(keys.map((k) => [k, k]));
    }, 3);
    expect(await Promise.all([1, 2, 3, 4, 5].map((k) => batch.get(k)))).toEqual([1, 2, 3, 4, 5]);
    expect(sizes).toEqual([3, 2]);
  });

  it('rejects every waiter of a batch whose load fails, and the next batch loads again', async () => {
    let fail = true;
    const batch = new KeyedBatch<string, string>((keys) => {
      if (fail) throw new Error('database away');
      return Promise.resolve(new Map(keys.map((k) => [k, k])));
    });
    const results = await Promise.allSettled([batch.get('a'), batch.get('b')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await batch.get('a')).toBe('a');
  });
});
