import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import type { ExtentItem } from '#otter/delta';
import { groupExtents } from './delta-build.jobs.js';

const item = (id: number, length: number): ExtentItem => ({
  id,
  sourceFile: 'source',
  targetFile: 'target',
  targetOffset: id * 1_000_000,
  length,
  kind: 'diff',
  window: { srcOffset: 0, srcLength: length },
});

describe('groupExtents', () => {
  it('packs consecutive small extents into one job up to one maximum extent, in order', () => {
    const items = [item(0, 400), item(1, 400), item(2, 300), item(3, 900), item(4, 100)];
    expect(groupExtents(items, 1000).map((g) => g.map((i) => i.id))).toEqual([[0, 1], [2], [3, 4]]);
  });

  it('gives a maximum-size extent a job of its own and caps a job at 256 extents', () => {
    expect(groupExtents([item(0, 1000), item(1, 1000)], 1000).map((g) => g.length)).toEqual([1, 1]);
    const many = Array.from({ length: 600 }, (_, i) => item(i, 1));
    expect(groupExtents(many, 1_000_000).map((g) => g.length)).toEqual([256, 256, 88]);
    expect(groupExtents([], 1000)).toEqual([]);
  });
});
