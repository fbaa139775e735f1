import { describe, expect, it } from 'vitest';
import { applyChanges, assertValidChanges } from './boot-variables.js';

describe('boot variable rules', () => {
  it('accepts identifiers and token values, and null for removal', () => {
    expect(() =>
      assertValidChanges({ otter_slot: 'b', bootcount: '0', upgrade_available: null }),
    ).not.toThrow();
    expect(() => assertValidChanges({ otter_last_trial: 'b:rolled-back:health-check-failed' })).not.toThrow();
  });

  it.each([
    ['a newline forging a second variable', { otter_trial_slot: 'b\notter_slot=b' }],
    ['a carriage return', { otter_slot: 'a\r' }],
    ['= in a value', { otter_slot: 'a=b' }],
    ['a space in a value', { otter_slot: 'a b' }],
    ['shell expansion in a value', { otter_slot: '${bootcmd}' }],
    ['a command separator in a value', { otter_slot: 'a;reset' }],
    ['an empty value', { otter_slot: '' }],
    ['an overlong value', { otter_slot: 'a'.repeat(256) }],
    ['a NUL byte', { otter_slot: 'a\0b' }],
  ])('refuses %s', (_what, changes) => {
    expect(() => assertValidChanges(changes)).toThrow(
      expect.objectContaining({ code: 'BOOT_ENV_VARIABLE_INVALID' }),
    );
  });

  it.each([['otter_slot=b'], ['otter slot'], ['slot\nbootcmd'], [''], ['1slot'], ['s'.repeat(65)], ['#x']])(
    'refuses the name %j',
    (name) => {
      expect(() => assertValidChanges({ [name]: 'a' })).toThrow(
        expect.objectContaining({ code: 'BOOT_ENV_VARIABLE_INVALID' }),
      );
    },
  );

  it('refuses an empty change set and a non-string value smuggled past the types', () => {
    expect(() => assertValidChanges({})).toThrow(
      expect.objectContaining({ code: 'BOOT_ENV_VARIABLE_INVALID' }),
    );
    const smuggled = JSON.parse('{"otter_slot": 1}') as Record<string, string>;
    expect(() => assertValidChanges(smuggled)).toThrow(
      expect.objectContaining({ code: 'BOOT_ENV_VARIABLE_INVALID' }),
    );
  });

  it('keeps a variable called __proto__ a variable', () => {
    const next = applyChanges({}, JSON.parse('{"__proto__": "x", "a": "1"}') as Record<string, string>);
    expect(Object.getPrototypeOf(next)).toBe(Object.prototype);
    expect(Object.entries(next)).toEqual([
      ['__proto__', 'x'],
      ['a', '1'],
    ]);
    expect(applyChanges(next, { a: null })).toEqual(JSON.parse('{"__proto__": "x"}'));
  });
});
