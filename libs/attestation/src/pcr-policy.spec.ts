import { describe, expect, it } from 'vitest';
import { evaluatePcrPolicy, releaseProofPcrs } from './index.js';
import { attestationErrorCode } from './testing.js';

const v = (byte: string): string => byte.repeat(32);

describe('evaluatePcrPolicy', () => {
  const quoted = { 0: v('00'), 4: v('44'), 7: v('77'), 9: v('99') };

  it('passes when pinned and reference values match (hex case does not matter)', () => {
    expect(
      evaluatePcrPolicy({
        pcrValues: quoted,
        pinned: { 0: v('00'), 7: v('77') },
        reference: { 9: v('99').toUpperCase() },
      }),
    ).toEqual({
      pass: true,
      mismatches: [],
      missing: [],
    });
    // An empty policy constrains nothing.
    expect(evaluatePcrPolicy({ pcrValues: quoted, pinned: {}, reference: {} }).pass).toBe(true);
  });

  it('reports each mismatch with its source, a PCR named by both checked against both', () => {
    const result = evaluatePcrPolicy({
      pcrValues: quoted,
      pinned: { 4: v('40'), 7: v('77') },
      reference: { 4: v('41'), 9: v('90') },
    });
    expect(result.pass).toBe(false);
    expect(result.mismatches).toEqual([
      { pcr: 4, expected: v('40'), actual: v('44'), source: 'pinned' },
      { pcr: 4, expected: v('41'), actual: v('44'), source: 'reference' },
      { pcr: 9, expected: v('90'), actual: v('99'), source: 'reference' },
    ]);
    expect(result.missing).toEqual([]);
  });

  it('fails on a PCR the policy names but the quote does not cover', () => {
    const result = evaluatePcrPolicy({
      pcrValues: quoted,
      pinned: { 0: v('00'), 14: v('14') },
      reference: { 8: v('08') },
    });
    expect(result).toEqual({ pass: false, mismatches: [], missing: [8, 14] });
  });

  it('refuses malformed values and PCR indices with PCR_POLICY_INVALID', () => {
    const bad: unknown[] = [
      { 0: 'abc' },
      { 0: v('zz') },
      { '01': v('00') },
      { '-1': v('00') },
      { 256: v('00') },
      { 1.5: v('00') },
      JSON.parse(`{"__proto__": "${v('00')}"}`),
      [v('00')],
      null,
      'x',
      Object.fromEntries(Array.from({ length: 300 }, (_, i) => [i, v('00')])),
    ];
    for (const pinned of bad) {
      expect(
        attestationErrorCode(() =>
          evaluatePcrPolicy({ pcrValues: quoted, pinned: pinned as Record<number, string>, reference: {} }),
        ),
      ).toBe('PCR_POLICY_INVALID');
    }
    expect(
      attestationErrorCode(() => evaluatePcrPolicy({ pcrValues: { 0: 'no' }, pinned: {}, reference: {} })),
    ).toBe('PCR_POLICY_INVALID');
  });
});

describe('releaseProofPcrs', () => {
  it('keeps the reference PCRs the pinned boot state does not fix, sorted and once each', () => {
    expect(releaseProofPcrs([9, 0, 8, 9], [0, 1, 2, 3, 4, 5, 6, 7])).toEqual([8, 9]);
  });

  it('is empty for a release without measurements, or one that only restates pinned PCRs', () => {
    expect(releaseProofPcrs([], [0, 7])).toEqual([]);
    expect(releaseProofPcrs([0, 7], [0, 7])).toEqual([]);
  });
});
