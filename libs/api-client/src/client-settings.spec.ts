import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClientSettingsError, DEFAULT_SERVER, resolveClientSettings } from './client-settings.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'otter-settings-'));
}

describe('resolveClientSettings', () => {
  it('takes server and token from OTTER_SERVER and OTTER_TOKEN, ignoring any token file', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'admin-token'), 'file-token\n');
    expect(
      resolveClientSettings({
        OTTER_SERVER: 'https://otter.example:9443',
        OTTER_TOKEN: 'env-token',
        OTTER_DATA_DIR: dataDir,
      }),
    ).toEqual({ server: 'https://otter.example:9443', token: 'env-token' });
  });

  it('falls back to the trimmed $OTTER_DATA_DIR/admin-token and the default server', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'admin-token'), '  otr_admin_secret \n');
    expect(resolveClientSettings({ OTTER_DATA_DIR: dataDir })).toEqual({
      server: DEFAULT_SERVER,
      token: 'otr_admin_secret',
    });
  });

  it('treats an empty OTTER_TOKEN as unset', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'admin-token'), 'file-token');
    expect(resolveClientSettings({ OTTER_TOKEN: '', OTTER_DATA_DIR: dataDir }).token).toBe('file-token');
  });

  it('defaults the data dir to ./.otter relative to the working directory', () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, '.otter'));
    writeFileSync(join(cwd, '.otter', 'admin-token'), 'cwd-token\n');
    expect(resolveClientSettings({}, cwd).token).toBe('cwd-token');
    // A relative OTTER_DATA_DIR resolves against the same directory.
    mkdirSync(join(cwd, 'state'));
    writeFileSync(join(cwd, 'state', 'admin-token'), 'state-token');
    expect(resolveClientSettings({ OTTER_DATA_DIR: 'state' }, cwd).token).toBe('state-token');
  });

  it('names both token sources when neither exists', () => {
    const dataDir = tempDir();
    let err: unknown;
    try {
      resolveClientSettings({ OTTER_DATA_DIR: dataDir });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClientSettingsError);
    const message = (err as Error).message;
    expect(message).toContain('OTTER_TOKEN');
    expect(message).toContain(join(dataDir, 'admin-token'));
  });

  it('refuses an empty token file', () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'admin-token'), ' \n');
    expect(() => resolveClientSettings({ OTTER_DATA_DIR: dataDir })).toThrow(/is empty/);
  });

  it('refuses an OTTER_SERVER that is not an http(s) URL', () => {
    expect(() => resolveClientSettings({ OTTER_SERVER: 'not a url', OTTER_TOKEN: 't' })).toThrow(
      ClientSettingsError,
    );
    expect(() => resolveClientSettings({ OTTER_SERVER: 'ftp://host', OTTER_TOKEN: 't' })).toThrow(/http/);
  });
});

describe('resolveClientSettings: tokens never cross a network in clear', () => {
  const env = (server: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    OTTER_SERVER: server,
    OTTER_TOKEN: 't',
    ...extra,
  });

  it('refuses an http:// server that is not loopback, saying how to fix it', () => {
    for (const server of ['http://otter.example', 'http://10.0.0.5:8080', 'http://[fd00::1]:8080']) {
      expect(() => resolveClientSettings(env(server))).toThrow(ClientSettingsError);
      expect(() => resolveClientSettings(env(server))).toThrow(/in clear.*https:\/\/.*--insecure-http/s);
    }
  });

  it('allows http:// to loopback (127.0.0.0/8, ::1, localhost) and https:// anywhere', () => {
    for (const server of [
      'http://127.0.0.1:8080',
      'http://127.1.2.3',
      'http://[::1]:8080',
      'http://localhost:8080',
      'https://otter.example',
    ]) {
      expect(resolveClientSettings(env(server)).server).toBe(server);
    }
  });

  it('lets an http:// server through with --insecure-http or OTTER_INSECURE_HTTP=1', () => {
    expect(resolveClientSettings(env('http://otter.example'), '/', { insecureHttp: true }).server).toBe(
      'http://otter.example',
    );
    expect(resolveClientSettings(env('http://otter.example', { OTTER_INSECURE_HTTP: '1' })).server).toBe(
      'http://otter.example',
    );
  });
});
