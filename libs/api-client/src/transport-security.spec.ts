import { describe, expect, it } from 'vitest';
import { checkServerTransport, isLoopbackHost, transportSettings } from './transport-security.js';

describe('transport security', () => {
  it('knows loopback from the rest', () => {
    for (const host of [
      '127.0.0.1',
      '127.255.0.9',
      '[::1]',
      '::1',
      'localhost',
      'LOCALHOST',
      'a.localhost',
    ]) {
      expect([host, isLoopbackHost(host)]).toEqual([host, true]);
    }
    for (const host of [
      '128.0.0.1',
      '10.0.0.1',
      '[::2]',
      'localhost.example',
      '127.0.0.1.nip.io',
      '0.0.0.0',
    ]) {
      expect([host, isLoopbackHost(host)]).toEqual([host, false]);
    }
  });

  it('warns, every time, when --insecure-http lets plain HTTP through', () => {
    expect(checkServerTransport('https://otter.example', { insecureHttp: true })).toEqual({});
    expect(checkServerTransport('http://127.0.0.1:1', { insecureHttp: false })).toEqual({});
    const { warning } = checkServerTransport('http://otter.example:8080', { insecureHttp: true });
    expect(warning).toMatch(/--insecure-http.*http:\/\/otter\.example:8080.*labs only/s);
    expect(() => checkServerTransport('ftp://otter.example', { insecureHttp: true })).toThrow(/https/);
  });

  it('takes the flags first, then OTTER_INSECURE_HTTP and OTTER_CA_FILE', () => {
    expect(transportSettings({}, {})).toEqual({ insecureHttp: false, caFile: undefined });
    expect(transportSettings({}, { OTTER_INSECURE_HTTP: 'true', OTTER_CA_FILE: '/ca.pem' })).toEqual({
      insecureHttp: true,
      caFile: '/ca.pem',
    });
    expect(transportSettings({ caFile: '/flag.pem' }, { OTTER_CA_FILE: '/env.pem' }).caFile).toBe(
      '/flag.pem',
    );
    expect(transportSettings({}, { OTTER_INSECURE_HTTP: '0' }).insecureHttp).toBe(false);
  });
});
