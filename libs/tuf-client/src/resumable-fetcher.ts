import { open, rm, stat } from 'node:fs/promises';
import { BaseFetcher } from 'tuf-js';
// tuf-js only recognises its own error class: a 404 on the `N+1.root.json` probe must be this exact class
// or refresh() fails. The package has no "exports" map, so the deep import resolves.
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { describeError, TufClientError } from './tuf-client-error.js';

export interface ResumableFetcherOptions {
  /** Longest wait for the response headers of one request, connecting included. Default 30 s. */
  responseTimeoutMs?: number;
  /**
   * Longest wait for the next chunk of a body. A body as a whole has no deadline (a multi-GB image on a slow
   * link takes as long as it takes); only a stalled connection is given up on. Default 30 s.
   */
  idleTimeoutMs?: number;
  /** Sent as User-Agent. */
  userAgent?: string;
  /** Sent with every request. */
  headers?: Record<string, string>;
  /**
   * Headers made for each request (all are GETs) of `url`: a device's access token with a DPoP proof, which
   * names the URL and is good for one request only.
   */
  requestHeaders?: (url: string) => Promise<Record<string, string>>;
}

export interface ResumableDownloadRequest {
  url: string;
  /** Where the bytes accumulate; continued from its current size when it exists. */
  partFile: string;
  /** The signed length: the download never writes past it. */
  length: number;
  onProgress?: (received: number, total: number) => void;
}

export interface ResumableDownloadResult {
  /** Offset the bytes received in this call started at (0 when the download started over). */
  resumedFrom: number;
  /** Bytes received and written in this call. */
  bytesDownloaded: number;
}

const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

/**
 * HTTP transport for the agent: tuf-js fetches metadata through `fetch()`, and targets are downloaded with
 * `downloadResumable()`, which continues a partial file with an HTTP Range request. Every wait is bounded
 * per request and per chunk, never over a whole body.
 */
export class ResumableFetcher extends BaseFetcher {
  private readonly responseTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly requestHeaders: ((url: string) => Promise<Record<string, string>>) | undefined;

  constructor(options: ResumableFetcherOptions = {}) {
    super();
    this.requestHeaders = options.requestHeaders;
    this.responseTimeoutMs = options.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_MS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.headers = { ...options.headers };
    if (options.userAgent) this.headers['User-Agent'] = options.userAgent;
  }

  /** Metadata: a plain GET. tuf-js enforces the size limits while it reads. */
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const { response, guard } = await this.request(url, {});
    if (!response.ok || !response.body) {
      await discard(response);
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    const chunks = readBody(response, guard, this.idleTimeoutMs, url);
    return new ReadableStream<Uint8Array<ArrayBuffer>>({
      async pull(controller) {
        try {
          const next = await chunks.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (error) {
          controller.error(error);
        }
      },
      async cancel() {
        await chunks.return(undefined);
      },
    });
  }

  /**
   * Downloads `url` into `partFile`, continuing from the file's current size with `Range: bytes=<size>-`.
   * A 206 is used only when its Content-Range continues exactly where the file ends; a 200 (Range ignored),
   * a 416 or a 206 for another range start the file over. The signed `length` is never exceeded: a server
   * that announces or sends more is cut off and the partial file deleted, since that URL does not serve the
   * signed bytes. A transport failure (HTTP error, stall, short body) keeps the partial file for next time.
   * The caller verifies the hashes of the completed file.
   */
  async downloadResumable(request: ResumableDownloadRequest): Promise<ResumableDownloadResult> {
    const { url, partFile, length, onProgress } = request;
    let offset = await fileSize(partFile);
    if (offset > length) {
      await rm(partFile, { force: true });
      offset = 0;
    }
    if (offset === length) return { resumedFrom: length, bytesDownloaded: 0 };

    const { response, guard, start } = await this.openTarget(url, offset, length);
    const remaining = length - start;
    const announced = response.headers.get('content-length');
    if (announced !== null && Number(announced) > remaining) {
      await discard(response);
      await rm(partFile, { force: true });
      throw new TufClientError(
        'TARGET_VERIFICATION_FAILED',
        `${url} announced ${announced} bytes but only ${remaining} of the signed ${length} remain`,
      );
    }

    // 'w' starts over (truncates), 'a' continues after the `start` bytes already on disk.
    const file = await open(partFile, start === 0 ? 'w' : 'a');
    let received = start;
    try {
      for await (const chunk of readBody(response, guard, this.idleTimeoutMs, url)) {
        if (received + chunk.length > length) {
          throw new TufClientError(
            'TARGET_VERIFICATION_FAILED',
            `${url} sent more than the signed length of ${length} bytes`,
          );
        }
        await file.write(chunk);
        received += chunk.length;
        onProgress?.(received, length);
      }
    } catch (error) {
      await file.close();
      if (error instanceof TufClientError) {
        if (error.code === 'TARGET_VERIFICATION_FAILED') await rm(partFile, { force: true });
        throw error;
      }
      throw new TufClientError(
        'TARGET_DOWNLOAD_FAILED',
        `download of ${url} failed after ${received} of ${length} bytes: ${describeError(error)}`,
        { cause: error },
      );
    }
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    if (received !== length) {
      throw new TufClientError(
        'TARGET_DOWNLOAD_FAILED',
        `${url} ended after ${received} of ${length} bytes; the partial download is kept`,
      );
    }
    return { resumedFrom: start, bytesDownloaded: received - start };
  }

  /** Opens the target body, continuing at `offset` when the server allows it; `start` says where it begins. */
  private async openTarget(
    url: string,
    offset: number,
    length: number,
  ): Promise<{ response: Response; guard: StallGuard; start: number }> {
    if (offset > 0) {
      const ranged = await this.request(url, { Range: `bytes=${offset}-` });
      const { response } = ranged;
      if (response.status === 206) {
        const range = parseContentRange(response.headers.get('content-range'));
        if (
          range !== undefined &&
          range.start === offset &&
          range.end === length - 1 &&
          (range.size === undefined || range.size === length)
        ) {
          return { ...ranged, start: offset };
        }
        // Some other range: splicing it onto the file would corrupt it. Start over.
        await discard(response);
      } else if (response.status === 200) {
        return { ...ranged, start: 0 };
      } else if (response.status === 416) {
        await discard(response);
      } else {
        await discard(response);
        throw httpFailure(url, response.status);
      }
    }
    const whole = await this.request(url, {});
    if (whole.response.status !== 200) {
      await discard(whole.response);
      throw httpFailure(url, whole.response.status);
    }
    return { ...whole, start: 0 };
  }

  private async request(
    url: string,
    extraHeaders: Record<string, string>,
  ): Promise<{ response: Response; guard: StallGuard }> {
    const perRequest = this.requestHeaders ? await this.requestHeaders(url) : {};
    const guard = new StallGuard();
    guard.arm(this.responseTimeoutMs, `no response from ${url} within ${this.responseTimeoutMs} ms`);
    try {
      const response = await fetch(url, {
        // identity: a decoded body would not match byte ranges or the signed length.
        headers: { ...this.headers, ...perRequest, 'Accept-Encoding': 'identity', ...extraHeaders },
        signal: guard.signal,
      });
      return { response, guard };
    } catch (error) {
      throw guard.explain(error);
    } finally {
      guard.disarm();
    }
  }
}

/** Aborts a request when a timer armed around each wait runs out. */
class StallGuard {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(ms: number, message: string): void {
    this.disarm();
    this.timer = setTimeout(() => this.controller.abort(new Error(message)), ms);
    // A pending timer must not keep a finished CLI alive.
    this.timer.unref();
  }

  disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The timeout if this guard fired, else the error as thrown. */
  explain(error: unknown): unknown {
    return this.signal.aborted && this.signal.reason instanceof Error ? this.signal.reason : error;
  }
}

/** The body's chunks, each wait bounded by `idleMs`. Stopping early cancels the body (closes the connection). */
async function* readBody(
  response: Response,
  guard: StallGuard,
  idleMs: number,
  url: string,
): AsyncGenerator<Uint8Array<ArrayBuffer>, void, undefined> {
  if (!response.body) return;
  const reader = response.body.getReader();
  let finished = false;
  try {
    while (true) {
      guard.arm(idleMs, `no data from ${url} for ${idleMs} ms`);
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        throw guard.explain(error);
      } finally {
        guard.disarm();
      }
      if (next.done) {
        finished = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/** `bytes <start>-<end>/<size|*>`; undefined when malformed. */
export function parseContentRange(
  value: string | null,
): { start: number; end: number; size: number | undefined } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  const size = match[3] === '*' ? undefined : Number(match[3]);
  if (end < start || (size !== undefined && end >= size)) return undefined;
  return { start, end, size };
}

function httpFailure(url: string, status: number): TufClientError {
  return new TufClientError('TARGET_DOWNLOAD_FAILED', `GET ${url}: HTTP ${status}`);
}
