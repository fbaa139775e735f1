import { describe, expect, it } from 'vitest';
import { DelegationLayout, globMatches, IMAGE_REPOSITORY_FAMILIES } from './delegation-layout.js';
import { allBinNames, binNameFor } from './hashed-bins.js';

const layout = new DelegationLayout(IMAGE_REPOSITORY_FAMILIES, 6);

describe('DelegationLayout', () => {
  it('places image and delta targets in their family and one of its bins', () => {
    const image = layout.classify('images/rpi4/2.4.0');
    expect(image).toMatchObject({ family: { role: 'images' } });
    expect(allBinNames('images-bin', 6)).toContain((image as { bin: string }).bin);
    expect(layout.classify('deltas/rpi4/2.3.0-2.4.0.delta')).toMatchObject({ family: { role: 'deltas' } });
  });

  it.each([
    ['images/../etc/passwd', /segment/],
    ['images/rpi4/../../x', /segment/],
    ['/images/rpi4/1.0.0', /segment/],
    ['images//1.0.0', /segment/],
    ['images/rpi4/.hidden', /segment/],
    ['images/rpi4/a b', /segment/],
    ['images/rpi4/1.0.0/extra', /no delegation/],
    ['images/rpi4', /no delegation/],
    ['firmware/rpi4/1.0.0', /no delegation/],
    ['images/rpi4/x\u0000', /segment/],
    [`images/rpi4/${'a'.repeat(600)}`, /512/],
  ])('refuses %j', (path, reason) => {
    const result = layout.classify(path);
    expect('error' in result && result.error).toMatch(reason);
  });

  it('uses TUF path-pattern semantics: * never crosses a slash', () => {
    expect(globMatches('images/*/*', 'images/a/b')).toBe(true);
    expect(globMatches('images/*/*', 'images/a/b/c')).toBe(false);
    expect(globMatches('images/*', 'images/a/b')).toBe(false);
  });

  it('numbers bins by the leading bits of sha256(path), hex padded like TAP 15 names', () => {
    expect(allBinNames('b', 4)).toHaveLength(16);
    expect(allBinNames('b', 6).at(-1)).toBe('b-3f');
    expect(allBinNames('b', 8)[0]).toBe('b-00');
    // sha256("images/rpi4/2.4.0") starts with a known byte; the bin is its top six bits.
    const name = binNameFor('images/rpi4/2.4.0', 'b', 6);
    expect(name).toMatch(/^b-[0-3][0-9a-f]$/);
  });
});
