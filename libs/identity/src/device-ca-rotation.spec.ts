import { describe, expect, it } from 'vitest';
import { issuingIndex, mayIssue, successorDue } from './device-ca-rotation.js';

const at = (s: number): Date => new Date(s * 1000);
/** A CA valid from `start` for `lifetime` seconds. */
const ca = (start: number, lifetime: number) => ({ notBefore: at(start), notAfter: at(start + lifetime) });

describe('device CA rotation', () => {
  it('asks for a successor from half the lifetime on, expired included', () => {
    expect(successorDue(ca(0, 60), at(29))).toBe(false);
    expect(successorDue(ca(0, 60), at(30))).toBe(true);
    expect(successorDue(ca(0, 60), at(600))).toBe(true);
  });

  it('lets a CA issue while a third of its lifetime is left, and never before it is valid', () => {
    expect(mayIssue(ca(0, 60), at(0))).toBe(true);
    expect(mayIssue(ca(0, 60), at(40))).toBe(true);
    expect(mayIssue(ca(0, 60), at(41))).toBe(false);
    expect(mayIssue(ca(10, 60), at(9))).toBe(false);
  });

  it('issues from the oldest CA that may, so a published successor waits its turn; else from the newest', () => {
    const generations = [ca(0, 60), ca(30, 60)];
    expect(issuingIndex(generations, at(35))).toBe(0);
    expect(issuingIndex(generations, at(41))).toBe(1);
    // A successor created late (or lifetimes changed): the newest signs rather than nobody.
    expect(issuingIndex([ca(0, 60), ca(55, 6)], at(60))).toBe(1);
    expect(() => issuingIndex([], at(0))).toThrow();
  });
});
