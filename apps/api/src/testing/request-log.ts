import type { Server } from 'node:http';

export interface LoggedRequest {
  method: string;
  /** Path and query, as the client sent them. */
  path: string;
  status: number;
  /** When the answer was sent, ms since the epoch. */
  at: number;
}

/**
 * Every request an api answered, observed on its HTTP server (a second 'request' listener next to Fastify's;
 * it changes nothing about the handling): how a test sees what a child-process agent did, and with what answer.
 */
export function recordRequests(server: Server): LoggedRequest[] {
  const log: LoggedRequest[] = [];
  server.on('request', (req, res) => {
    res.on('finish', () =>
      log.push({ method: req.method ?? '', path: req.url ?? '', status: res.statusCode, at: Date.now() }),
    );
  });
  return log;
}
