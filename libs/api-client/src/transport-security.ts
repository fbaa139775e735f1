import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';

/** Env equivalents of the agent's and the CLI's `--insecure-http` and `--ca-file`. */
export const INSECURE_HTTP_ENV = 'OTTER_INSECURE_HTTP';
export const CA_FILE_ENV = 'OTTER_CA_FILE';

export class TransportSecurityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransportSecurityError';
  }
}

export interface TransportSettings {
  /** Allow `http://` to a host that is not loopback (labs only): every run says so on stderr. */
  insecureHttp: boolean;
  /** PEM bundle of CAs to trust besides the system's, for an api with a private CA. */
  caFile?: string;
}

/** `--insecure-http` / `--ca-file` as given, else their env variables. */
export function transportSettings(
  flags: { insecureHttp?: boolean; caFile?: string },
  env: NodeJS.ProcessEnv = process.env,
): TransportSettings {
  const fromEnv = env[INSECURE_HTTP_ENV]?.trim().toLowerCase();
  const caFile = flags.caFile ?? (env[CA_FILE_ENV]?.trim() || undefined);
  return { insecureHttp: flags.insecureHttp === true || fromEnv === '1' || fromEnv === 'true', caFile };
}

/** 127.0.0.0/8, ::1 (and v4-mapped loopback), and `localhost` names: traffic that never leaves the host. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host);
  return false;
}

/**
 * Refuses to send credentials to `server` in clear: `https://` anywhere, `http://` only to loopback unless
 * `insecureHttp`. Returns the warning to print (on every run) when the flag lets an `http://` server through.
 */
export function checkServerTransport(
  server: string,
  settings: Pick<TransportSettings, 'insecureHttp'>,
  source = 'the server URL',
): { warning?: string } {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TransportSecurityError(`${source} is not a URL: ${JSON.stringify(server)}`);
  }
  if (url.protocol === 'https:') return {};
  if (url.protocol !== 'http:') {
    throw new TransportSecurityError(`${source} must be an https:// URL, got ${JSON.stringify(server)}`);
  }
  if (isLoopbackHost(url.hostname)) return {};
  if (!settings.insecureHttp) {
    throw new TransportSecurityError(
      `refusing ${url.origin}: tokens would cross the network in clear. Use https:// ` +
        `(trust a private CA with --ca-file or ${CA_FILE_ENV}); plain http:// is allowed to loopback only, ` +
        `or, in a lab, with --insecure-http (${INSECURE_HTTP_ENV}=1)`,
    );
  }
  return {
    warning:
      `WARNING: --insecure-http: talking to ${url.origin} over plain HTTP; access tokens can be read and ` +
      'replayed by anyone on the path. For labs only.',
  };
}

/**
 * Adds the certificates of a PEM bundle to the CAs this process trusts for TLS (fetch included), on top of
 * the default ones. Throws when the file holds no certificate.
 */
export function trustCaFile(file: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TransportSecurityError(`cannot read CA file ${file}: ${(e as Error).message}`);
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  for (const pem of pems) {
    try {
      new X509Certificate(pem);
    } catch (e) {
      throw new TransportSecurityError(
        `CA file ${file} holds a certificate that does not parse: ${(e as Error).message}`,
      );
    }
  }
  if (pems.length === 0) throw new TransportSecurityError(`CA file ${file} holds no PEM certificate`);
  setDefaultCACertificates([...getCACertificates('default'), ...pems]);
  return pems.length;
}
