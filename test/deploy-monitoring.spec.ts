import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { INestApplicationContext } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '#otter/config';
import { OtterMetrics } from '#otter/metrics';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { createDeltaWorker } from '../apps/delta-worker/src/create-delta-worker.js';
import { createScheduler } from '../apps/scheduler/src/create-scheduler.js';
import { exportedSeriesNames } from '../libs/metrics/src/testing.js';

// The Grafana dashboard and the Prometheus alert rules in deploy/ are parsed, and every metric they name is
// looked up in what the api, scheduler and delta-worker really export: their registries, booted here.

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (...parts: string[]): string => readFileSync(join(root, 'deploy', ...parts), 'utf8');

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = parse(read('prometheus', 'otter-alerts.yaml')) as {
  groups: Array<{ name: string; rules: AlertRule[] }>;
};
const alerts = rules.groups.flatMap((g) => g.rules);

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Array<{ expr: string; refId: string }>;
  gridPos: { x: number; y: number; w: number; h: number };
}
const dashboard = JSON.parse(read('grafana', 'otter-dashboard.json')) as {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; query: { query: string } }> };
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
};
const panels = dashboard.panels.filter((p) => p.type !== 'row');

/** Otter's metric names in a PromQL expression (every Otter metric starts with otter_; no label does). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\botter_[a-z0-9_]+/g)].map((m) => m[0]);
}

const exported = new Set<string>();
const contexts: INestApplicationContext[] = [];
let api: ApiHarness | undefined;

beforeAll(async () => {
  const prefix = `t${randomBytes(5).toString('hex')}`;
  api = await startApi({ OTTER_QUEUE_PREFIX: prefix });
  const config = loadConfig({
    OTTER_DATA_DIR: api.config.dataDir,
    OTTER_LOG_LEVEL: 'silent',
    OTTER_ENV: 'test',
    REDIS_URL: api.config.redisUrl,
    OTTER_QUEUE_PREFIX: prefix,
    DATABASE_URL: `sqlite:${api.config.database.dialect === 'sqlite' ? api.config.database.file : ''}`,
  });
  contexts.push(await createScheduler(config), await createDeltaWorker(config));
  for (const app of [api.app, ...contexts])
    for (const name of await exportedSeriesNames(app.get(OtterMetrics))) exported.add(name);
}, 60_000);
afterAll(async () => {
  for (const c of contexts) await c.close();
  await api?.close();
});

describe('deploy/prometheus/otter-alerts.yaml', () => {
  it('alerts on a role expiring within a day, a paused rollout, rising attestation failures and a stuck queue', () => {
    const byName = new Map(alerts.map((a) => [a.alert, a]));
    expect(byName.get('OtterTufRoleExpiringSoon')?.expr).toMatch(
      /otter_tuf_role_expiry_seconds\{repository="image"\}\) < 86400\n/,
    );
    expect(byName.get('OtterRolloutPaused')?.expr).toMatch(/otter_rollouts\{state="paused"\}/);
    expect(byName.get('OtterAttestationFailureRateRising')?.expr).toMatch(
      /rate\(otter_attestation_verifications_total\{outcome="failed"\}/,
    );
    expect(byName.get('OtterQueueStuck')?.expr).toMatch(/otter_queue_jobs\{state="waiting"\}/);
  });

  it('gives every rule a duration, a severity and a summary', () => {
    expect(new Set(alerts.map((a) => a.alert)).size).toBe(alerts.length);
    for (const a of alerts) {
      expect(a.for, a.alert).toMatch(/^\d+[smh]$/);
      expect(['warning', 'critical'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
    }
  });

  it('uses only metrics Otter exports', () => {
    expect(exported.size).toBeGreaterThan(20);
    for (const a of alerts) {
      const names = metricNames(a.expr);
      expect(names.length, a.alert).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name), `${a.alert}: ${name}`).toBe(true);
    }
  });

  it('is the rule file the example scrape configuration loads', () => {
    const example = parse(read('prometheus', 'prometheus.example.yaml')) as {
      rule_files: string[];
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    expect(example.rule_files).toEqual(['otter-alerts.yaml']);
    const targets = example.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets.sort()).toEqual(['api:8443', 'delta-worker:9464', 'scheduler:9464']);
  });
});

describe('deploy/grafana/otter-dashboard.json', () => {
  it('is an importable dashboard on a Prometheus data source input', () => {
    expect(dashboard).toMatchObject({ title: 'Otter', uid: 'otter-overview' });
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({ name: 'DS_PROMETHEUS', pluginId: 'prometheus' }),
    ]);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });

  it('shows every family the issue lists', () => {
    const used = new Set(panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr))));
    for (const name of [
      'otter_nodes',
      'otter_rollouts',
      'otter_rollout_wave_nodes',
      'otter_queue_jobs',
      'otter_queue_job_duration_seconds_bucket',
      'otter_delta_builds',
      'otter_delta_download_bytes_saved_total',
      'otter_attestation_verifications_total',
      'otter_tuf_role_expiry_seconds',
      'otter_scheduler_tick_duration_seconds_bucket',
      'otter_http_request_duration_seconds_bucket',
    ])
      expect(used.has(name), name).toBe(true);
  });

  it('uses only metrics Otter exports, in panels and variables', () => {
    for (const p of panels) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        const names = metricNames(t.expr);
        expect(names.length, `${p.title} ${t.refId}`).toBeGreaterThan(0);
        for (const name of names) expect(exported.has(name), `${p.title}: ${name}`).toBe(true);
      }
    }
    for (const v of dashboard.templating.list)
      for (const name of metricNames(v.query.query))
        expect(exported.has(name), `$${v.name}: ${name}`).toBe(true);
  });
});
