import { afterEach, describe, expect, it } from 'vitest';
import { METRICS } from './metric-families.js';
import { MetricsServer } from './metrics-server.js';
import { OtterMetrics } from './otter-metrics.js';
import { Exposition } from './testing.js';

const scrape = async (metrics: OtterMetrics) => Exposition.parse((await metrics.exposition()).body);

describe('OtterMetrics', () => {
  it('keeps each registry to itself and returns one metric per family', () => {
    const a = new OtterMetrics({ process: 'api', fleet: true });
    const b = new OtterMetrics({ process: 'scheduler', fleet: false });
    expect(a.histogram(METRICS.httpRequestDuration)).toBe(a.histogram(METRICS.httpRequestDuration));
    a.counter(METRICS.attestationVerifications).inc({ outcome: 'passed' });
    expect(a.familyNames()).toContain('otter_attestation_verifications_total');
    expect(b.familyNames()).not.toContain('otter_attestation_verifications_total');
  });

  it('runs every collector of a gauge on each scrape and forgets label sets that disappeared', async () => {
    const metrics = new OtterMetrics({ process: 'api', fleet: true });
    let rollouts = ['r1', 'r2'];
    metrics.gauge(METRICS.rolloutWaveNodes, async (gauge) => {
      for (const id of rollouts)
        gauge.set({ rollout_id: id, rollout_name: id, wave: '0', state: 'pending' }, 1);
    });
    metrics.gauge(METRICS.tufRoleExpiry, async (gauge) =>
      gauge.set({ repository: 'image', role: 'root' }, 5),
    );
    metrics.gauge(METRICS.tufRoleExpiry, async (gauge) =>
      gauge.set({ repository: 'director', role: 'root' }, 7),
    );
    expect((await scrape(metrics)).find('otter_rollout_wave_nodes')).toHaveLength(2);
    rollouts = ['r2'];
    const second = await scrape(metrics);
    expect(second.find('otter_rollout_wave_nodes').map((s) => s.labels.rollout_id)).toEqual(['r2']);
    expect(second.value('otter_tuf_role_expiry_seconds', { repository: 'image', role: 'root' })).toBe(5);
    expect(second.value('otter_tuf_role_expiry_seconds', { repository: 'director', role: 'root' })).toBe(7);
  });

  it('leaves out a collector that fails or misses its deadline, and answers the rest', async () => {
    const metrics = new OtterMetrics({ process: 'api', fleet: true });
    metrics.gauge(METRICS.rollouts, () => Promise.reject(new Error('database gone')));
    metrics.gauge(METRICS.queueJobs, () => new Promise(() => {}), 50);
    metrics.gauge(METRICS.deltaBuilds, async (gauge) => gauge.set({ state: 'published' }, 3));
    const started = Date.now();
    const m = await scrape(metrics);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(m.find('otter_rollouts')).toEqual([]);
    expect(m.find('otter_queue_jobs')).toEqual([]);
    expect(m.value('otter_delta_builds', { state: 'published' })).toBe(3);
  });
});

describe('MetricsServer', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => server?.close());

  it('serves GET /metrics only, with the bearer token when one is set', async () => {
    const metrics = new OtterMetrics({ process: 'delta-worker', fleet: false });
    server = await MetricsServer.listen(metrics, {
      host: '127.0.0.1',
      port: 0,
      token: 'a-token-of-16-chars',
    });
    const url = `http://127.0.0.1:${server.port}`;
    const auth = { authorization: 'Bearer a-token-of-16-chars' };
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${url}/other`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${url}/metrics`, { method: 'POST', headers: auth })).status).toBe(405);
    const ok = await fetch(`${url}/metrics?x=1`, { headers: auth });
    expect(ok.status).toBe(200);
    expect(Exposition.parse(await ok.text()).families.get('otter_process_cpu_seconds_total')).toBe('COUNTER');
  });
});
