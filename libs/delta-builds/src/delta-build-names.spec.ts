import { describe, expect, it } from 'vitest';
import {
  deltaBuildId,
  deltaFlowJobIds,
  deltaPublishJob,
  deltaTargetPath,
  deltaWorkKeys,
} from './delta-build-names.js';

const a = 'a'.repeat(64);
const b = 'b'.repeat(64);

describe('delta build names', () => {
  it('gives job ids BullMQ accepts (no ":") and blob keys of valid segments', () => {
    const id = deltaBuildId('rpi4', a, b);
    const flow = deltaFlowJobIds(id, 'c'.repeat(64));
    for (const jobId of [id, flow.assemble, flow.extent(12), deltaPublishJob(Date.now(), 2000).jobId]) {
      expect(jobId).not.toContain(':');
    }
    const keys = deltaWorkKeys(id, 'c'.repeat(64));
    expect(keys.extent(3)).toBe(`delta-work/${id}/${'c'.repeat(16)}/extent-3`);
    expect(keys.plan.split('/').every((s) => s.length <= 255 && /^[A-Za-z0-9._-]+$/.test(s))).toBe(true);
    expect(deltaTargetPath('rpi4', '1.0.0', '2.0.0-rc.1')).toBe('deltas/rpi4/1.0.0-2.0.0-rc.1.delta');
  });

  it('names one build per hardware id and image pair, whatever the versions are called', () => {
    expect(deltaBuildId('rpi4', a, b)).toBe(deltaBuildId('rpi4', a, b));
    expect(deltaBuildId('rpi4', a, b)).not.toBe(deltaBuildId('rpi5', a, b));
    expect(deltaBuildId('rpi4', a, b)).not.toBe(deltaBuildId('rpi4', b, a));
  });

  it('debounces publishing: one job per bucket, always due after the moment that scheduled it', () => {
    const delay = 2000;
    const t = 1_000_000_000_000; // a bucket boundary
    expect(deltaPublishJob(t, delay).jobId).toBe(deltaPublishJob(t + 1999, delay).jobId);
    expect(deltaPublishJob(t + 2000, delay).jobId).not.toBe(deltaPublishJob(t + 1999, delay).jobId);
    for (const now of [t, t + 1, t + 1999]) {
      const { delay: wait } = deltaPublishJob(now, delay);
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(delay);
    }
  });
});
