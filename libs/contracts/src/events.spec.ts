import { describe, expect, it } from 'vitest';
import {
  OTTER_EVENT_KINDS,
  eventMatches,
  isKindPattern,
  otterEventSchema,
  type OtterEvent,
} from './events.js';

const at = '2026-12-07T12:00:00.000Z';

describe('the event vocabulary', () => {
  it('has every kind issue 10 lists, each once', () => {
    expect(new Set(OTTER_EVENT_KINDS).size).toBe(OTTER_EVENT_KINDS.length);
    for (const kind of [
      'release.published',
      'delta.build.queued',
      'delta.build.progress',
      'delta.build.published',
      'delta.build.failed',
      'rollout.created',
      'rollout.started',
      'rollout.wave.started',
      'rollout.node.admitted',
      'rollout.node.step',
      'rollout.paused',
      'rollout.resumed',
      'rollout.completed',
      'rollout.aborted',
      'node.enrolled',
      'node.approved',
      'node.revoked',
      'node.attestation.verdict',
      'node.quarantined',
      'tuf.metadata.resigned',
      'tuf.role.expiring',
    ])
      expect(OTTER_EVENT_KINDS).toContain(kind);
  });

  it('refuses an event without its ids or of an unknown kind', () => {
    expect(otterEventSchema.safeParse({ kind: 'rollout.completed', at, hardwareId: 'h' }).success).toBe(
      false,
    );
    expect(
      otterEventSchema.safeParse({ kind: 'rollout.done', at, rolloutId: 'r', hardwareId: 'h' }).success,
    ).toBe(false);
    expect(
      otterEventSchema.safeParse({ kind: 'rollout.completed', at, rolloutId: 'r', hardwareId: 'h' }).success,
    ).toBe(true);
  });

  it('matches kinds exactly or by prefix, and ids exactly', () => {
    const e: OtterEvent = {
      kind: 'rollout.node.admitted',
      at,
      rolloutId: 'r',
      hardwareId: 'h',
      nodeId: 'n',
      wave: 1,
      fromVersion: null,
    };
    expect(eventMatches(e, { kinds: [] })).toBe(true);
    expect(eventMatches(e, { kinds: ['rollout.*'] })).toBe(true);
    expect(eventMatches(e, { kinds: ['rollout.node.*'] })).toBe(true);
    expect(eventMatches(e, { kinds: ['rollout.node'] })).toBe(false);
    expect(eventMatches(e, { kinds: ['node.*'] })).toBe(false);
    expect(eventMatches(e, { kinds: [], rolloutId: 'r', nodeId: 'n', hardwareId: 'h' })).toBe(true);
    expect(eventMatches(e, { kinds: [], nodeId: 'other' })).toBe(false);
    expect(isKindPattern('rollout.*')).toBe(true);
    expect(isKindPattern('tuf.role.expiring')).toBe(true);
    expect(isKindPattern('nothing.*')).toBe(false);
    expect(isKindPattern('*')).toBe(false);
  });
});
