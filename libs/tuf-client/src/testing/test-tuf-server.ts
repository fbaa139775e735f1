import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve, sep } from 'node:path';

export interface RecordedRequest {
  method: string;
  /** Path below the repository prefix, e.g. `/metadata/timestamp.json` or `/targets/a/<sha>.img`. */
  path: string;
  range: string | undefined;
}

/**
 * Handles a request instead of the file server when it returns true. `path` is below the repository prefix.
 */
export type Intercept = (
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
) => boolean | Promise<boolean>;

/**
 * Serves a TUF repository directory (`metadata/`, `targets/`) under `/tuf/image` like Otter does, with single
 * HTTP byte ranges (206 + Content-Range, 416 past the end). Records every request. Tests misbehave through
 * `ignoreRange` and `intercept`.
 */
export class TestTufServer {
  readonly requests: RecordedRequest[] = [];
  /** Answer every Range request with the whole file (200), as a server without Range support does. */
  ignoreRange = false;
  intercept: Intercept | undefined;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly rootDir: string,
    private readonly prefix: string,
  ) {}

  static async start(rootDir: string, prefix = '/tuf/image'): Promise<TestTufServer> {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const instance = new TestTufServer(server, `http://127.0.0.1:${port}`, resolve(rootDir), prefix);
    server.on('request', (req, res) => {
      instance.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(error));
      });
    });
    return instance;
  }

  /** Requests for targets (not metadata). */
  get targetRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.path.startsWith('/targets/'));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const urlPath = new URL(req.url ?? '/', 'http://x').pathname;
    if (!urlPath.startsWith(`${this.prefix}/`)) return notFound(res);
    const path = urlPath.slice(this.prefix.length);
    this.requests.push({ method: req.method ?? '', path, range: req.headers.range });
    if (this.intercept && (await this.intercept(req, res, path))) return;

    const file = resolve(join(this.rootDir, decodeURIComponent(path)));
    if (!file.startsWith(this.rootDir + sep)) return notFound(res);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return notFound(res);
    const content = await readFile(file);
    const size = content.length;

    const range = this.ignoreRange ? undefined : parseRange(req.headers.range);
    if (range === undefined) {
      res.writeHead(200, { 'Content-Length': size, 'Accept-Ranges': 'bytes' });
      res.end(content);
      return;
    }
    const end = Math.min(range.end ?? size - 1, size - 1);
    if (range.start >= size || end < range.start) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}` });
      res.end();
      return;
    }
    res.writeHead(206, {
      'Content-Length': end - range.start + 1,
      'Content-Range': `bytes ${range.start}-${end}/${size}`,
      'Accept-Ranges': 'bytes',
    });
    res.end(content.subarray(range.start, end + 1));
  }
}

function parseRange(header: string | undefined): { start: number; end: number | undefined } | undefined {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? '');
  if (!match) return undefined;
  return { start: Number(match[1]), end: match[2] ? Number(match[2]) : undefined };
}

function notFound(res: ServerResponse): void {
  res.writeHead(404);
  res.end();
}
