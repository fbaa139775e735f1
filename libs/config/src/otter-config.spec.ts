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

  it('refuses a port that is not a number', () => {
    expect(() => loadConfig({ OTTER_PORT: 'eighty' })).toThrow(/OTTER_PORT/);
  });
});
