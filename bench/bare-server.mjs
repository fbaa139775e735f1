// The baseline for bench/timestamp.bench.mjs: a bare node:http server that serves one fixed body with an
// ETag and answers a matching If-None-Match with 304, the least any server can do for timestamp.json.
// It runs in a worker thread of the bench process, so it has an event loop of its own and does not share
// one with the load generator (Otter's api, in its own process, does not either).
import { createServer } from 'node:http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/** True when an If-None-Match header value names `etag` (RFC 9110 weak comparison, or `*`). */
export function etagMatches(ifNoneMatch, etag) {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  const opaque = (tag) => tag.trim().replace(/^W\//, '');
  return ifNoneMatch.split(',').some((tag) => opaque(tag) === opaque(etag));
}

/**
 * Starts the bare server in a worker thread on 127.0.0.1 and a free port.
 * @param {{ body: Buffer, etag: string, headers?: Record<string, string> }} content
 *   headers: extra response headers to copy from the server being compared (Content-Type, Cache-Control).
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export function startBareServer({ body, etag, headers = {} }) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { body, etag, headers } });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`bare server thread exited (${code}) before listening`)));
    worker.once('message', (/** @type {{ port: number }} */ { port }) =>
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: async () => {
          await worker.terminate();
        },
      }),
    );
  });
}

if (!isMainThread && workerData?.etag) {
  const body = Buffer.from(workerData.body);
  const { etag } = workerData;
  const fixed = { ...workerData.headers, etag };
  const server = createServer((req, res) => {
    if (etagMatches(req.headers['if-none-match'], etag)) {
      res.writeHead(304, fixed);
      res.end();
      return;
    }
    res.writeHead(200, { ...fixed, 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => parentPort?.postMessage({ port: server.address().port }));
}
