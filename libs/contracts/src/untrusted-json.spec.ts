import { describe, expect, it } from 'vitest';
import { parseUntrustedJson, UntrustedJsonError } from './untrusted-json.js';

describe('parseUntrustedJson', () => {
  it('parses ordinary JSON, with or without a byte-order mark', () => {
    expect(parseUntrustedJson('{"9":"ab","list":[1,{"x":null}]}')).toEqual({
      9: 'ab',
      list: [1, { x: null }],
    });
    expect(parseUntrustedJson('\uFEFF[1]')).toEqual([1]);
  });

  it.each([
    ['__proto__ at the top', '{"9":"ab","__proto__":"ab"}', '__proto__'],
    ['__proto__ holding an object', '{"__proto__":{"polluted":true}}', '__proto__'],
    ['constructor.prototype', '{"constructor":{"prototype":{"polluted":true}}}', 'prototype'],
    ['constructor alone', '{"constructor":"x"}', 'constructor'],
    ['a nested prototype key', '{"a":[{"b":{"prototype":1}}]}', 'prototype'],
    ['__proto__ spelt with escapes', '{"\\u005f_proto\\u005f_":{"polluted":true}}', '__proto__'],
  ])('refuses %s', (_name, text, key) => {
    expect(() => parseUntrustedJson(text)).toThrow(new UntrustedJsonError(`the key "${key}" is not allowed`));
  });

  it('allows those words as values', () => {
    expect(parseUntrustedJson('{"a":"__proto__","b":["constructor"]}')).toEqual({
      a: '__proto__',
      b: ['constructor'],
    });
  });

  it.each(['', '{', '{"a":1,}', 'undefined'])('refuses %j as not valid JSON', (text) => {
    expect(() => parseUntrustedJson(text)).toThrow(/^not valid JSON \(/);
  });

  it('leaves Object.prototype alone', () => {
    expect(() => parseUntrustedJson('{"__proto__":{"polluted":true}}')).toThrow(UntrustedJsonError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
