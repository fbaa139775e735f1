import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface FreshConnectionAnswer {
  status: number;
  /** The body parsed as JSON, or undefined when empty. */
  json: unknown;
}

/**
 * One request on a connection of its own, closed after: what a client on another machine sends. `fetch` pools
 * connections per process, so a test's "thief" would otherwise ride the genuine client's kept-alive connection,
 * which the api may have bound to the device key (OTTER_DPOP_CONNECTION_BINDING). TLS trusts the process's
 * default CAs (trustCaFile adds a test CA to them).
 */
export function onFreshConnection(
  url: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<FreshConnectionAnswer> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
