import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OtterMetrics } from './otter-metrics.js';
import { scrapeAllowed } from './scrape-authorization.js';

/**
 * The scheduler's and delta-worker's metrics endpoint: a bare node:http server (they have no HTTP server of
 * their own) answering `GET /metrics` and nothing else.
 */
export class MetricsServer {
  private constructor(private readonly server: Server) {}

  static async listen(
    metrics: OtterMetrics,
    options: { host: string; port: number; token?: string },
  ): Promise<MetricsServer> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '').split('?')[0];
      if (path !== '/metrics') return void response.writeHead(404).end('not found\n');
      if (request.method !== 'GET' && request.method !== 'HEAD')
        return void response.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      if (!scrapeAllowed(request.headers.authorization, options.token))
        return void response
          .writeHead(401, { 'www-authenticate': 'Bearer realm="otter-metrics"' })
          .end('unauthorized\n');
      metrics.exposition().then(
        ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
        (error: Error) => response.writeHead(500).end(`${error.message}\n`),
      );
    });
    // Scrapes are small and rare: a slow or idle client must not hold sockets for long.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new MetricsServer(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
