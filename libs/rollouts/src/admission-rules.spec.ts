import { describe, expect, it } from 'vitest';
import { decideAdmission } from './admission-gate.js';
import { insideWindow } from './maintenance-window.js';
import { isForward } from './rollout-states.js';

const now = new Date('2026-12-05T12:00:00Z');
const ago = (s: number): string => new Date(now.getTime() - s * 1000).toISOString();

describe('decideAdmission', () => {
  it('admits only a passing verdict within the maximum age', () => {
    expect(decideAdmission({ passed: true, reason: 'ok', createdAt: ago(10) }, 60, now)).toEqual({
      kind: 'admit',
    });
    expect(decideAdmission({ passed: true, reason: 'ok', createdAt: ago(61) }, 60, now).kind).toBe(
      'ask-to-attest',
    );
    expect(decideAdmission(null, 60, now).kind).toBe('ask-to-attest');
  });

  it('quarantines a fresh failing verdict, and asks again after a stale one', () => {
    expect(decideAdmission({ passed: false, reason: 'PCR 9', createdAt: ago(5) }, 60, now)).toEqual({
      kind: 'quarantine',
      reason: 'attestation failed: PCR 9',
    });
    expect(decideAdmission({ passed: false, reason: 'PCR 9', createdAt: ago(600) }, 60, now).kind).toBe(
      'ask-to-attest',
    );
  });
});

describe('insideWindow', () => {
  it('handles plain and midnight-wrapping windows (UTC)', () => {
    expect(insideWindow(null, now)).toBe(true);
    expect(insideWindow({ start: '11:00', end: '13:00' }, now)).toBe(true);
    expect(insideWindow({ start: '13:00', end: '14:00' }, now)).toBe(false);
    expect(insideWindow({ start: '22:00', end: '02:00' }, new Date('2026-12-05T23:30:00Z'))).toBe(true);
    expect(insideWindow({ start: '22:00', end: '02:00' }, new Date('2026-12-05T01:59:00Z'))).toBe(true);
    expect(insideWindow({ start: '22:00', end: '02:00' }, now)).toBe(false);
  });
});

describe('isForward', () => {
  it('moves nodes forward only, and never out of a finished state', () => {
    expect(isForward('assigned', 'downloading')).toBe(true);
    expect(isForward('booted', 'downloading')).toBe(false);
    expect(isForward('committed', 'committed')).toBe(false);
    expect(isForward('rebooting', 'rolled-back')).toBe(true);
    expect(isForward('succeeded', 'failed')).toBe(false);
    expect(isForward('quarantined', 'assigned')).toBe(false);
  });
});
