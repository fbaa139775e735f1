import type {
  AccessTokenDto,
  ActivationRequest,
  ActivationResult,
  AttestationChallenge,
  AttestationRequest,
  DeviceReport,
  EnrollmentChallenge,
  EnrollmentRequest,
  IdentityRequest,
  IdentityResult,
  VerdictDto,
} from '#otter/contracts';

export class DeviceApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'DeviceApiError';
  }
}

/** The device side of Otter's HTTP API: JSON in, JSON out, errors as DeviceApiError with Otter's code. */
export class DeviceApi {
  constructor(
    private readonly server: string,
    private accessToken?: string,
  ) {}

  withAccessToken(token: string): DeviceApi {
    return new DeviceApi(this.server, token);
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

  private async post<T>(path: string, body: unknown): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.accessToken) headers.authorization = `Bearer ${this.accessToken}`;
    const res = await fetch(new URL(path, this.server.endsWith('/') ? this.server : `${this.server}/`), {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const e = (json ?? {}) as { code?: string; message?: string; details?: Record<string, unknown> };
      throw new DeviceApiError(
        res.status,
        e.code ?? `HTTP_${res.status}`,
        e.message ?? res.statusText,
        e.details,
      );
    }
    return json as T;
  }
}
