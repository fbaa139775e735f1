import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseContentRange, ResumableFetcher } from './resumable-fetcher.js';
import { TestTufServer } from './testing/test-tuf-server.js';

let workDir: string;
let server: TestTufServer;

beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'otter-fetcher-'));
  server = await TestTufServer.start(workDir);
});

afterEach(async () => {
  await server.close();
  await rm(workDir, { recursive: true, force: true });
});

describe('ResumableFetcher (metadata)', () => {
  it("throws tuf-js's own DownloadHTTPError for 4xx and 5xx, as its root probe requires", async () => {
    const fetcher = new ResumableFetcher();
    for (const status of [403, 404, 503]) {
      server.intercept = (_req, res) => {
        res.writeHead(status).end('nope');
        return true;
      };
      const error = await fetcher.downloadBytes(`${server.url}/tuf/image/metadata/2.root.json`, 1000).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DownloadHTTPError);
      expect((error as DownloadHTTPError).statusCode).toBe(status);
    }
  });

  it('returns the body and sends the configured headers', async () => {
    server.intercept = (req, res) => {
      res.writeHead(200).end(`auth=${req.headers.authorization}; encoding=${req.headers['accept-encoding']}`);
      return true;
    };
    const fetcher = new ResumableFetcher({ headers: { Authorization: 'Bearer t' } });
    const bytes = await fetcher.downloadBytes(`${server.url}/tuf/image/metadata/timestamp.json`, 1000);
    expect(bytes.toString()).toBe('auth=Bearer t; encoding=identity');
  });

  it('gives up on a response that never comes and on a body that stalls', async () => {
    const fetcher = new ResumableFetcher({ responseTimeoutMs: 200, idleTimeoutMs: 200 });
    server.intercept = () => true; // never answers
    await expect(
      fetcher.downloadBytes(`${server.url}/tuf/image/metadata/timestamp.json`, 1000),
    ).rejects.toThrow(/no response from .* within 200 ms/);

    server.intercept = (_req, res) => {
      res.writeHead(200, { 'Content-Length': 100 });
      res.write('{"partial":');
      return true;
    };
    await expect(
      fetcher.downloadBytes(`${server.url}/tuf/image/metadata/timestamp.json`, 1000),
    ).rejects.toThrow(/no data from .* for 200 ms/);
  });

  it('keeps a slow body alive as long as data keeps coming', async () => {
    const fetcher = new ResumableFetcher({ idleTimeoutMs: 150 });
    server.intercept = (_req, res) => {
      res.writeHead(200);
      let sent = 0;
      // 6 chunks, 100 ms apart: 600 ms in all, longer than the idle timeout but never idle that long.
      const timer = setInterval(() => {
        res.write('x');
        if (++sent === 6) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
      return true;
    };
    const bytes = await fetcher.downloadBytes(`${server.url}/tuf/image/metadata/timestamp.json`, 1000);
    expect(bytes.toString()).toBe('xxxxxx');
  });
});

describe('parseContentRange', () => {
  it('accepts only well-formed single ranges', () => {
    expect(parseContentRange('bytes 10-19/20')).toEqual({ start: 10, end: 19, size: 20 });
    expect(parseContentRange('bytes 10-19/*')).toEqual({ start: 10, end: 19, size: undefined });
    expect(parseContentRange('bytes 10-20/20')).toBeUndefined();
    expect(parseContentRange('bytes 19-10/20')).toBeUndefined();
    expect(parseContentRange('bytes */20')).toBeUndefined();
    expect(parseContentRange(null)).toBeUndefined();
  });
});
