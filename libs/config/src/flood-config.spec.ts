import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './otter-config.js';

const DAY = 86_400;

describe('flood controls and retention configuration', () => {
  it('has the documented defaults: no trusted proxy, a 30 s request timeout', () => {
    const c = loadConfig({});
    expect(c.http).toEqual({ trustedProxies: [], requestTimeoutSeconds: 30 });
    expect(c.rateLimits).toEqual({
      windowSeconds: 60,
      enrollment: { perAddress: 60, global: 600 },
      deviceLogin: { perAddress: 3000, global: 300_000 },
    });
    expect(c.devices).toMatchObject({ maxOpenEnrollments: 1000, noncesPerNode: 16, accessTokenTtl: 600 });
    expect(c.retention).toEqual({
      every: 3600,
      reports: { maxAgeSeconds: 30 * DAY, perNode: 1000 },
      verdicts: { maxAgeSeconds: 90 * DAY, perNode: 1000 },
      downloads: { maxAgeSeconds: 365 * DAY, perNode: 1000 },
      enrollmentsMaxAgeSeconds: 7 * DAY,
      // The audit log is kept for ever unless an operator says otherwise.
      auditMaxAgeDays: null,
    });
  });

  it('reads every variable', () => {
    const c = loadConfig({
      OTTER_TRUSTED_PROXIES: '10.0.0.1, 192.168.0.0/16,fd00::/8,::1,loopback',
      OTTER_REQUEST_TIMEOUT_SECONDS: '5',
      OTTER_RATE_LIMIT_WINDOW_SECONDS: '10',
      OTTER_RATE_LIMIT_ENROLLMENT_PER_ADDRESS: '3',
      OTTER_RATE_LIMIT_ENROLLMENT_GLOBAL: '30',
      OTTER_RATE_LIMIT_LOGIN_PER_ADDRESS: '4',
      OTTER_RATE_LIMIT_LOGIN_GLOBAL: '40',
      OTTER_MAX_OPEN_ENROLLMENTS: '2',
      OTTER_ATTESTATION_NONCES_PER_NODE: '3',
      OTTER_DEVICE_TOKEN_TTL: '77',
      OTTER_RETENTION_EVERY: '1',
      OTTER_RETENTION_REPORTS_MAX_AGE: '11',
      OTTER_RETENTION_REPORTS_PER_NODE: '12',
      OTTER_RETENTION_VERDICTS_MAX_AGE: '13',
      OTTER_RETENTION_VERDICTS_PER_NODE: '14',
      OTTER_RETENTION_DOWNLOADS_MAX_AGE: '15',
      OTTER_RETENTION_DOWNLOADS_PER_NODE: '16',
      OTTER_RETENTION_ENROLLMENTS_MAX_AGE: '17',
      OTTER_AUDIT_RETENTION_DAYS: '18',
    });
    expect(c.http).toEqual({
      trustedProxies: ['10.0.0.1', '192.168.0.0/16', 'fd00::/8', '::1', 'loopback'],
      requestTimeoutSeconds: 5,
    });
    expect(c.rateLimits).toEqual({
      windowSeconds: 10,
      enrollment: { perAddress: 3, global: 30 },
      deviceLogin: { perAddress: 4, global: 40 },
    });
    expect(c.devices).toMatchObject({ maxOpenEnrollments: 2, noncesPerNode: 3, accessTokenTtl: 77 });
    expect(c.retention).toEqual({
      every: 1,
      reports: { maxAgeSeconds: 11, perNode: 12 },
      verdicts: { maxAgeSeconds: 13, perNode: 14 },
      downloads: { maxAgeSeconds: 15, perNode: 16 },
      enrollmentsMaxAgeSeconds: 17,
      auditMaxAgeDays: 18,
    });
  });

  it.each([
    ['OTTER_TRUSTED_PROXIES', 'proxy.example.com'],
    ['OTTER_TRUSTED_PROXIES', '10.0.0.0/33'],
    ['OTTER_TRUSTED_PROXIES', '10.0.0.1,*'],
    ['OTTER_TRUSTED_PROXIES', '10.0.0.0/8/8'],
    ['OTTER_REQUEST_TIMEOUT_SECONDS', '0'],
    ['OTTER_RATE_LIMIT_ENROLLMENT_PER_ADDRESS', '0'],
    ['OTTER_RATE_LIMIT_LOGIN_GLOBAL', 'lots'],
    ['OTTER_MAX_OPEN_ENROLLMENTS', '-1'],
    ['OTTER_RETENTION_VERDICTS_PER_NODE', '0'],
    ['OTTER_AUDIT_RETENTION_DAYS', '-1'],
    ['OTTER_AUDIT_RETENTION_DAYS', '7.5'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
