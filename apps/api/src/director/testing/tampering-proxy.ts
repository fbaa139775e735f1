import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ForwardedRequest {
  /** Path and query, e.g. `/tuf/director/<node>/metadata/timestamp.json`. */
  path: string;
  headers: Record<string, string>;
}

/**
 * A man in the middle between an agent and the api: forwards every GET, after `rewrite` may have changed
 * where it goes and with which headers, and lets `replace` answer a request with bytes of its own. It says
 * which URL the agent addressed (X-Forwarded-Host and -Proto, as a reverse proxy does), so the agent's DPoP
 * proofs, which name that URL, pass.
 */
export class TamperingProxy {
  rewrite: ((request: ForwardedRequest) => ForwardedRequest | Promise<ForwardedRequest>) | undefined;
  replace: ((path: string) => Promise<string | undefined> | string | undefined) | undefined;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly upstream: string,
  ) {}

  static async start(upstream: string): Promise<TamperingProxy> {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const proxy = new TamperingProxy(server, `http://127.0.0.1:${port}`, upstream);
    server.on('request', (req, res) => {
      proxy
        .forward(req)
        .then(({ status, headers, body }) => {
          res.writeHead(status, headers);
          res.end(body);
        })
        .catch((error: unknown) => {
          res.writeHead(502);
          res.end(String(error));
        });
    });
    return proxy;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  private async forward(
    req: IncomingMessage,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    const path = req.url ?? '/';
    const replaced = await this.replace?.(path);
    if (replaced !== undefined) {
      return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(replaced) };
    }
    const headers: Record<string, string> = {};
    for (const name of ['authorization', 'dpop', 'range', 'user-agent']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    headers['x-forwarded-host'] = new URL(this.url).host;
    headers['x-forwarded-proto'] = 'http';
    const target = (await this.rewrite?.({ path, headers })) ?? { path, headers };
    const response = await fetch(`${this.upstream}${target.path}`, { headers: target.headers });
    const out: Record<string, string> = {};
    for (const name of ['content-type', 'content-range', 'accept-ranges']) {
      const value = response.headers.get(name);
      if (value !== null) out[name] = value;
    }
    return { status: response.status, headers: out, body: Buffer.from(await response.arrayBuffer()) };
  }
}
