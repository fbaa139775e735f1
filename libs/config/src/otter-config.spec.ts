import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './otter-config.js';

describe('loadConfig', () => {
  it('runs on embedded defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.database).toMatchObject({ dialect: 'sqlite' });
    expect(c.blobStore.kind).toBe('fs');
    expect(c.dataDir.endsWith('.otter')).toBe(true);
  });

  it('selects PostgreSQL from DATABASE_URL', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@h/db' }).database).toEqual({
      dialect: 'postgres',
      url: 'postgres://u@h/db',
    });
  });

  it('names every bad variable with its reason', () => {
    try {
      loadConfig({ OTTER_BLOB_STORE: 's3', OTTER_ENV: 'production' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const text = (e as ConfigError).message;
      expect(text).toContain('OTTER_S3_BUCKET: required when OTTER_BLOB_STORE=s3');
      expect(text).toContain('OTTER_KEY_PASSPHRASE');
    }
  });

  it('sizes the director held timestamps from OTTER_DIRECTOR_HELD_NODES, and refuses a negative size', () => {
    expect(loadConfig({}).tuf.directorHeldNodes).toBe(20_000);
    expect(loadConfig({ OTTER_DIRECTOR_HELD_NODES: '250000' }).tuf.directorHeldNodes).toBe(250_000);
    expect(loadConfig({ OTTER_DIRECTOR_HELD_NODES: '0' }).tuf.directorHeldNodes).toBe(0);
    expect(() => loadConfig({ OTTER_DIRECTOR_HELD_NODES: '-1' })).toThrow(/OTTER_DIRECTOR_HELD_NODES/);
  });

  it('sets device certificate and device CA lifetimes in seconds; a CA must live at least three certificates', () => {
    expect(loadConfig({}).devices).toMatchObject({ certificateTtl: 90 * 86_400, caTtl: 20 * 365 * 86_400 });
    expect(loadConfig({ OTTER_DEVICE_CERT_TTL: '4', OTTER_DEVICE_CA_TTL: '12' }).devices).toMatchObject({
      certificateTtl: 4,
      caTtl: 12,
    });
    expect(() => loadConfig({ OTTER_DEVICE_CERT_TTL: '5', OTTER_DEVICE_CA_TTL: '12' })).toThrow(
      /OTTER_DEVICE_CA_TTL: must be at least 3 × OTTER_DEVICE_CERT_TTL/,
    );
    expect(() => loadConfig({ OTTER_DEVICE_CA_TTL: '0' })).toThrow(/OTTER_DEVICE_CA_TTL/);
  });

  it('terminates TLS only with both a certificate and a key, and takes a public URL without query', () => {
    expect(loadConfig({}).tls).toBeUndefined();
    expect(loadConfig({ OTTER_TLS_CERT: '/etc/tls/c.pem', OTTER_TLS_KEY: '/etc/tls/k.pem' }).tls).toEqual({
      certFile: '/etc/tls/c.pem',
      keyFile: '/etc/tls/k.pem',
    });
    expect(() => loadConfig({ OTTER_TLS_CERT: '/etc/tls/c.pem' })).toThrow(/OTTER_TLS_KEY: .*go together/);
    expect(() => loadConfig({ OTTER_TLS_KEY: '/etc/tls/k.pem' })).toThrow(/OTTER_TLS_CERT: .*go together/);
    expect(loadConfig({ OTTER_PUBLIC_URL: 'https://otter.example/base/' }).publicUrl).toBe(
      'https://otter.example/base',
    );
    expect(() => loadConfig({ OTTER_PUBLIC_URL: 'https://otter.example/?x=1' })).toThrow(/OTTER_PUBLIC_URL/);
    expect(loadConfig({}).dpopConnectionBinding).toBe(false);
    expect(loadConfig({ OTTER_DPOP_CONNECTION_BINDING: 'true' }).dpopConnectionBinding).toBe(true);
  });

  it('binds DPoP proofs per connection by default only where clients reach the api over their own TLS', () => {
    const tls = { OTTER_TLS_CERT: '/etc/tls/c.pem', OTTER_TLS_KEY: '/etc/tls/k.pem' };
    // Plain HTTP: a TLS-terminating proxy is in front, which may pool many agents on one connection.
    expect(loadConfig({ OTTER_DPOP_CONNECTION_BINDING: 'auto' }).dpopConnectionBinding).toBe(false);
    expect(loadConfig(tls).dpopConnectionBinding).toBe(true);
    // A declared proxy speaks for many clients, TLS or not.
    expect(loadConfig({ ...tls, OTTER_TRUSTED_PROXIES: '10.0.0.1' }).dpopConnectionBinding).toBe(false);
    // An explicit setting wins either way.
    expect(loadConfig({ ...tls, OTTER_DPOP_CONNECTION_BINDING: 'false' }).dpopConnectionBinding).toBe(false);
    expect(loadConfig({ OTTER_DPOP_CONNECTION_BINDING: '1' }).dpopConnectionBinding).toBe(true);
    expect(() => loadConfig({ OTTER_DPOP_CONNECTION_BINDING: 'sometimes' })).toThrow(
      /OTTER_DPOP_CONNECTION_BINDING/,
    );
  });

  it('refuses a port that is not a number', () => {
    expect(() => loadConfig({ OTTER_PORT: 'eighty' })).toThrow(/OTTER_PORT/);
  });
});
