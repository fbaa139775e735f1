import { basename } from 'node:path';
import { Readable } from 'node:stream';
import type { CreatedTokenDto, ReleaseDto, ReleaseListDto, TokenDto, TokenListDto } from '#otter/contracts';
import { ApiError, ApiUnreachableError } from './api-error.js';
import type { PostTokensData } from './generated/index.js';
import type { ClientSettings } from './client-settings.js';
import { createMultipartUpload, UploadSourceError } from './multipart-upload.js';
import { validateReleaseFields } from './release-input.js';

export interface PushReleaseInput {
  hardware: string;
  version: string;
  measurements?: Record<string, string>;
  notes?: string;
  imagePath: string;
  /** Called as the image streams out: image bytes handed to the connection so far, and the image size. */
  onProgress?: (bytesSent: number, totalBytes: number) => void;
}

export type CreateTokenInput = PostTokensData['body'];

/** A typed client for the Otter management API (`/api/v1`). */
export class OtterApiClient {
  private readonly base: URL;

  constructor(private readonly settings: ClientSettings) {
    // A trailing slash keeps a path prefix (https://host/otter/) when resolving relative API paths.
    this.base = new URL(settings.server.endsWith('/') ? settings.server : `${settings.server}/`);
  }

  async listReleases(hardware?: string): Promise<ReleaseDto[]> {
    const query = hardware === undefined ? '' : `?${new URLSearchParams({ hardware })}`;
    const list = await this.request<ReleaseListDto>('GET', `api/v1/releases${query}`);
    return list.releases;
  }

  /**
   * Streams the image as multipart/form-data: hardware, version, measurements, notes, then the image, with an
   * exact content-length. Invalid fields are refused before the request starts.
   */
  async pushRelease(input: PushReleaseInput): Promise<ReleaseDto> {
    validateReleaseFields(input);
    const fields: Array<[string, string]> = [
      ['hardware', input.hardware],
      ['version', input.version],
    ];
    if (input.measurements !== undefined) fields.push(['measurements', JSON.stringify(input.measurements)]);
    if (input.notes !== undefined) fields.push(['notes', input.notes]);
    const upload = await createMultipartUpload(
      fields,
      {
        field: 'image',
        path: input.imagePath,
        filename: basename(input.imagePath),
        contentType: 'application/octet-stream',
      },
      input.onProgress,
    );
    try {
      return await this.request<ReleaseDto>('POST', 'api/v1/releases', {
        body: Readable.toWeb(upload.body) as ReadableStream<Uint8Array>,
        headers: { 'content-type': upload.contentType, 'content-length': String(upload.contentLength) },
      });
    } finally {
      // An early answer (413, 401) leaves the rest of the image unread: stop reading it.
      upload.body.destroy();
    }
  }

  createToken(input: CreateTokenInput): Promise<CreatedTokenDto> {
    return this.request<CreatedTokenDto>('POST', 'api/v1/tokens', {
      body: JSON.stringify({ name: input.name, role: input.role }),
      headers: { 'content-type': 'application/json' },
    });
  }

  async listTokens(): Promise<TokenDto[]> {
    const list = await this.request<TokenListDto>('GET', 'api/v1/tokens');
    return list.tokens;
  }

  async revokeToken(id: string): Promise<void> {
    await this.request<void>('DELETE', `api/v1/tokens/${encodeURIComponent(id)}`);
  }

  /** A GET whose answer is read as a stream (server-sent events); anything but 2xx throws as `request` does. */
  protected async openStream(
    path: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Response> {
    const url = new URL(path, this.base);
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { authorization: `Bearer ${this.settings.token}`, ...headers },
        redirect: 'error',
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw unreachable(e, 'GET', url, false);
    }
    if (!response.ok) throw await apiErrorFrom(response);
    return response;
  }

  /** One JSON request to the API; subclasses (TufAdminClient) add endpoints through it. */
  protected async request<T>(
    method: string,
    path: string,
    init: { body?: string | ReadableStream<Uint8Array>; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const url = new URL(path, this.base);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        body: init.body,
        // Required by fetch for a streamed request body.
        ...(init.body instanceof ReadableStream ? { duplex: 'half' as const } : {}),
        headers: {
          accept: 'application/json',
          authorization: `Bearer ${this.settings.token}`,
          ...init.headers,
        },
        // Never follow a redirect: a streamed body cannot be replayed, and the token must not travel on.
        // 'error' rather than 'manual' also matters for memory: with any other mode undici tees the request
        // body to keep it for a redirect and buffers the whole upload (nodejs/undici#4058).
        redirect: 'error',
      });
    } catch (e) {
      throw unreachable(e, method, url, init.body instanceof ReadableStream);
    }
    if (!response.ok) throw await apiErrorFrom(response);
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(
        response.status,
        'INVALID_RESPONSE',
        `${method} ${url.pathname}: answer is not JSON`,
      );
    }
  }
}

function unreachable(e: unknown, method: string, url: URL, streaming: boolean): Error {
  // fetch wraps everything in TypeError('fetch failed'); the cause says what actually happened.
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  if (cause instanceof UploadSourceError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  if (reason === 'unexpected redirect') {
    return new ApiUnreachableError(
      `${method} ${url.href} answered with a redirect; set OTTER_SERVER to the API's final address`,
      { cause: e },
    );
  }
  if (reason === 'bad port') {
    return new ApiUnreachableError(`${method} ${url.href}: fetch refuses to connect to port ${url.port}`, {
      cause: e,
    });
  }
  const code = cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined;
  if (streaming && (code === 'EPIPE' || code === 'ECONNRESET')) {
    // A server that refuses an upload and then closes at once can reset the connection before its answer
    // is read; the likely reason is worth naming.
    return new ApiUnreachableError(
      `${method} ${url.href} failed: the server closed the connection during the upload (${reason}); ` +
        'it may refuse an image this large (see its OTTER_MAX_UPLOAD_BYTES)',
      { cause: e },
    );
  }
  return new ApiUnreachableError(`${method} ${url.href} failed: ${reason}`, { cause: e });
}

async function apiErrorFrom(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (isErrorBody(body)) {
    const details = typeof body.details === 'object' && body.details !== null ? body.details : undefined;
    return new ApiError(response.status, body.code, body.message, details);
  }
  // Not Otter's error shape: a proxy or load balancer answered. Show what it said, briefly.
  const snippet = text.trim().replace(/\s+/g, ' ').slice(0, 200);
  return new ApiError(
    response.status,
    `HTTP_${response.status}`,
    snippet || response.statusText || 'no details',
  );
}

function isErrorBody(
  body: unknown,
): body is { code: string; message: string; details?: Record<string, unknown> } {
  if (typeof body !== 'object' || body === null) return false;
  const { code, message } = body as Record<string, unknown>;
  return typeof code === 'string' && typeof message === 'string';
}
