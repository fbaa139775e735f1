import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  checkServerTransport,
  transportSettings,
  TransportSecurityError,
  type TransportSettings,
} from './transport-security.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';
export const DEFAULT_DATA_DIR = '.otter';
/** Written by the api on first start (0600); see libs/auth. */
export const ADMIN_TOKEN_FILE = 'admin-token';

/** Where the management API lives and the bearer token to present to it. */
export interface ClientSettings {
  server: string;
  token: string;
}

export class ClientSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientSettingsError';
  }
}

/**
 * Server from OTTER_SERVER; token from OTTER_TOKEN, else `$OTTER_DATA_DIR/admin-token` (the token a dev install
 * hands its first admin). Relative data dirs resolve against `cwd`, as the api resolves its own. The token is
 * never sent in clear: an `http://` server is refused unless it is loopback or `insecureHttp` (--insecure-http,
 * OTTER_INSECURE_HTTP) is set.
 */
export function resolveClientSettings(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
  transport: Pick<TransportSettings, 'insecureHttp'> = transportSettings({}, env),
): ClientSettings {
  const server = nonEmpty(env.OTTER_SERVER) ?? DEFAULT_SERVER;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ClientSettingsError(`OTTER_SERVER is not a URL: ${JSON.stringify(server)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ClientSettingsError(
      `OTTER_SERVER must be an http:// or https:// URL, got ${JSON.stringify(server)}`,
    );
  }
  try {
    checkServerTransport(server, transport, 'OTTER_SERVER');
  } catch (e) {
    if (e instanceof TransportSecurityError) throw new ClientSettingsError(e.message);
    throw e;
  }

  const envToken = nonEmpty(env.OTTER_TOKEN);
  if (envToken) return { server, token: envToken };

  const tokenFile = join(resolve(cwd, nonEmpty(env.OTTER_DATA_DIR) ?? DEFAULT_DATA_DIR), ADMIN_TOKEN_FILE);
  let fileToken: string;
  try {
    fileToken = readFileSync(tokenFile, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ClientSettingsError(
        `no API token: set OTTER_TOKEN, or point OTTER_DATA_DIR at a data dir holding ${ADMIN_TOKEN_FILE} ` +
          `(looked for ${tokenFile})`,
      );
    }
    throw new ClientSettingsError(`cannot read token file ${tokenFile}: ${(e as Error).message}`);
  }
  if (!fileToken) {
    throw new ClientSettingsError(`token file ${tokenFile} is empty; set OTTER_TOKEN or recreate the file`);
  }
  return { server, token: fileToken };
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}
