import type {
  AccessTokenDto,
  ActivationRequest,
  ActivationResult,
  AttestationChallenge,
  AttestationRequest,
  DeviceInstructionsDto,
  DeviceReport,
  DownloadReport,
  EnrollmentChallenge,
  EnrollmentRequest,
  IdentityRequest,
  IdentityResult,
  InventoryReceipt,
  InventoryReport,
  UpdateReport,
  VerdictDto,
} from '#otter/contracts';
import { ApiError, ApiUnreachableError, dpopHeaders, type DpopKey } from '#otter/api-client';

/** Otter's answer to a refused device request: HTTP status, Otter's error code, message and details. */
export { ApiError as DeviceApiError };

/** An access token and the device key it is bound to. */
export interface DeviceCredentials {
  accessToken: string;
  key: DpopKey;
}

/**
 * The device side of Otter's HTTP API: JSON in, JSON out, errors as DeviceApiError with Otter's code. With
 * credentials, every request carries the access token and a DPoP proof for that request signed by the device
 * key (RFC 9449): the token alone is refused.
 */
export class DeviceApi {
  constructor(
    private readonly server: string,
    private readonly credentials?: DeviceCredentials,
  ) {}

  withCredentials(credentials: DeviceCredentials): DeviceApi {
    return new DeviceApi(this.server, credentials);
  }

  /** The headers of one request to `url` as this node: its token and a fresh proof. */
  authorize(method: string, url: string): Promise<Record<string, string>> {
    if (!this.credentials) throw new Error('this DeviceApi has no access token');
    return dpopHeaders(this.credentials.key, method, url, this.credentials.accessToken);
  }

  startEnrollment(body: EnrollmentRequest): Promise<EnrollmentChallenge> {
    return this.post('api/v1/devices/enrollments', body);
  }

  activate(enrollmentId: string, body: ActivationRequest): Promise<ActivationResult> {
    return this.post(`api/v1/devices/enrollments/${enrollmentId}/activation`, body);
  }

  identity(nodeId: string, body: IdentityRequest): Promise<IdentityResult> {
    return this.post(`api/v1/devices/${nodeId}/identity`, body);
  }

  token(assertion: string): Promise<AccessTokenDto> {
    return this.post('api/v1/devices/token', { assertion });
  }

  challenge(runningVersion?: string): Promise<AttestationChallenge> {
    return this.post('api/v1/devices/me/attestation/challenge', runningVersion ? { runningVersion } : {});
  }

  attest(body: AttestationRequest): Promise<VerdictDto> {
    return this.post('api/v1/devices/me/attestation', body);
  }

  report(body: DeviceReport): Promise<void> {
    return this.post('api/v1/devices/me/reports', body);
  }

  reportDownload(body: DownloadReport): Promise<void> {
    return this.post('api/v1/devices/me/downloads', body);
  }

  reportUpdate(body: UpdateReport): Promise<void> {
    return this.post('api/v1/devices/me/updates', body);
  }

  reportInventory(body: InventoryReport): Promise<InventoryReceipt> {
    return this.request('PUT', 'api/v1/devices/me/inventory', body);
  }

  instructions(): Promise<DeviceInstructionsDto> {
    return this.request('GET', 'api/v1/devices/me/instructions');
  }

  private post<T>(path: string, body: unknown): Promise<T> {
    return this.request('POST', path, body);
  }

  private async request<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.server.endsWith('/') ? this.server : `${this.server}/`);
    const headers: Record<string, string> = this.credentials ? await this.authorize(method, url.href) : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (e) {
      // fetch() says only "fetch failed"; the reason (ECONNREFUSED, a timeout) is in its cause.
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new ApiUnreachableError(`${method} ${url.href} failed: ${reason}`, { cause: e });
    }
    const text = await res.text();
    const json = parseJson(text);
    if (!res.ok) {
      const e = (json ?? {}) as { code?: string; message?: string; details?: Record<string, unknown> };
      throw new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? res.statusText, e.details);
    }
    if (text && json === undefined)
      throw new ApiError(res.status, 'INVALID_RESPONSE', `${method} ${url.pathname}: answer is not JSON`);
    return json as T;
  }
}

/** The body as JSON, or undefined when it is empty or not JSON (a proxy's HTML error page, say). */
function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
