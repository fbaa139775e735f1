import { describe, expect, it } from 'vitest';
import { clipText } from './clip-text.js';

describe('clipText', () => {
  it('leaves text that fits alone', () => {
    expect(clipText('abc', 3)).toBe('abc');
  });

  it('cuts longer text to the limit, ending in an ellipsis', () => {
    const clipped = clipText('x'.repeat(5000), 1000);
    expect(clipped).toHaveLength(1000);
    expect(clipped.endsWith('x…')).toBe(true);
  });

  it('never keeps half of a surrogate pair', () => {
    const clipped = clipText(`ab${'😀'.repeat(10)}`, 6);
    expect(clipped).toBe('ab😀…');
    expect(clipped.length).toBeLessThanOrEqual(6);
    expect(clipped.isWellFormed()).toBe(true);
  });
});
