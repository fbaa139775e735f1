import type { Server } from 'node:http';

export interface LoggedRequest {
  method: string;
  /** Path and query, as the client sent them. */
  path: string;
  status: number;
  /** When the request came in, ms since the epoch (so a test can take what was asked after a moment). */
  at: number;
}

/**
 * Every request an api answered, observed on its HTTP server (a second 'request' listener next to Fastify's;
 * it changes nothing about the handling): how a test sees what a child-process agent did, and with what answer.
 */
export function recordRequests(server: Server): LoggedRequest[] {
  const log: LoggedRequest[] = [];
  server.on('request', (req, res) => {
    const at = Date.now();
    // Logged once answered: what is in the log has its status.
    res.on('finish', () =>
      log.push({ method: req.method ?? '', path: req.url ?? '', status: res.statusCode, at }),
    );
  });
  return log;
}
