import type { FastifyRequest } from 'fastify';
import { authorizationCredentials, bearerToken } from '#otter/auth';
import { OtterError } from '#otter/errors';
import type { DpopRequest } from '#otter/identity';

/** What a device request authenticates with: its bound access token and the DPoP proof for this request. */
export interface DeviceCredentials {
  accessToken: string;
  dpop: DpopRequest;
}

/** Headers a proxy adds: a request with any of them may share its connection with other clients. */
const PROXY_HEADERS = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'via',
];

export interface DeviceCredentialsOptions {
  /** OTTER_PUBLIC_URL. */
  publicUrl?: string;
  /** OTTER_DPOP_CONNECTION_BINDING: pass the connection, so a proven one stays bound to its key. */
  connectionBinding?: boolean;
}

/**
 * A device request's credentials. Device access tokens are bound to the node's TPM device key, so they are
 * accepted only with the DPoP scheme and a proof; a bound token sent as a plain bearer token is refused with a
 * reason that says so. `publicUrl` is the base URL devices address the api by (OTTER_PUBLIC_URL); unset, the
 * request's own scheme and host (X-Forwarded-* only from a trusted proxy, as Fastify's trustProxy decides).
 */
export function deviceCredentials(
  request: FastifyRequest,
  { publicUrl, connectionBinding = false }: DeviceCredentialsOptions,
): DeviceCredentials {
  const header = request.headers.authorization;
  // `DPoP <token>` (RFC 9449 §7.1), read by the one Authorization parser the management routes use too.
  const accessToken = authorizationCredentials(header, 'DPoP');
  if (!accessToken) {
    if (bearerToken(header)) {
      throw new OtterError('UNAUTHENTICATED', 'device access tokens are bound to the device key: use DPoP', {
        reason: 'dpop_required',
      });
    }
    throw new OtterError('UNAUTHENTICATED', 'a device access token is required');
  }
  const proof = request.headers.dpop;
  return {
    accessToken,
    dpop: {
      proof: typeof proof === 'string' ? proof : undefined,
      method: request.method,
      // A getter: a request on a connection already bound to its key never reads it, and the request's
      // protocol and host (trust-proxy rules included) cost a measurable share of an unchanged director poll.
      get url() {
        const query = request.url.indexOf('?');
        const path = query === -1 ? request.url : request.url.slice(0, query);
        return `${publicUrl ?? `${request.protocol}://${request.host}`}${path}`;
      },
      // Binding a connection is sound only when it is the client's own: not when a proxy speaks for it.
      connection:
        connectionBinding && !PROXY_HEADERS.some((h) => request.headers[h] !== undefined)
          ? request.raw.socket
          : undefined,
    },
  };
}
