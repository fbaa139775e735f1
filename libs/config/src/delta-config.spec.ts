import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './otter-config.js';

describe('delta configuration', () => {
  it('has the documented defaults; retry and lock settings default to libs/queue (undefined here)', () => {
    expect(loadConfig({}).delta).toEqual({
      memoryBudgetBytes: 1024 * 1024 * 1024,
      maxFraction: 0.6,
      fromRecent: 3,
      workerConcurrency: 1,
      attempts: undefined,
      backoffMs: undefined,
      lockSeconds: undefined,
      publishDelayMs: undefined,
    });
  });

  it('reads every OTTER_DELTA_* variable', () => {
    const delta = loadConfig({
      OTTER_DELTA_MEMORY_MB: '256',
      OTTER_DELTA_MAX_FRACTION: '0.5',
      OTTER_DELTA_FROM_RECENT: '0',
      OTTER_DELTA_WORKER_CONCURRENCY: '4',
      OTTER_DELTA_ATTEMPTS: '2',
      OTTER_DELTA_BACKOFF_MS: '100',
      OTTER_DELTA_LOCK_SECONDS: '5',
      OTTER_DELTA_PUBLISH_DELAY_MS: '250',
    }).delta;
    expect(delta).toEqual({
      memoryBudgetBytes: 256 * 1024 * 1024,
      maxFraction: 0.5,
      fromRecent: 0,
      workerConcurrency: 4,
      attempts: 2,
      backoffMs: 100,
      lockSeconds: 5,
      publishDelayMs: 250,
    });
  });

  it.each([
    ['OTTER_DELTA_MEMORY_MB', '16'],
    ['OTTER_DELTA_MAX_FRACTION', '0'],
    ['OTTER_DELTA_MAX_FRACTION', '1.5'],
    ['OTTER_DELTA_WORKER_CONCURRENCY', '0'],
    ['OTTER_DELTA_FROM_RECENT', '-1'],
    ['OTTER_DELTA_ATTEMPTS', 'many'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
