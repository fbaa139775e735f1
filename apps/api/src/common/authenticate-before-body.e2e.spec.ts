import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedNodeRow } from '#otter/db';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { rawMultipart } from '../testing/raw-multipart.js';
import { deviceCredentialsFor, type DeviceCredentialsForTest } from '../testing/software-device-key.js';

// Issue 9 item 7, by attack against a real api: one reading of `Authorization` on every route (the scheme is
// case-insensitive, RFC 7235: `Bearer` on management routes, `DPoP` with its proof on device routes, RFC 9449),
// and a body is judged only once its sender is known: an unauthenticated request is a 401 whatever its body,
// never a 400 or 415 that tells a stranger how the body was read.

let api: ApiHarness;
let admin: string;
let nodeId: string;
/** The node's device key and an access token bound to it. */
let device: DeviceCredentialsForTest;

beforeAll(async () => {
  api = await startApi();
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  nodeId = await seedNodeRow(api.db, { hardwareId: 'rpi4', labels: { site: 'north' } });
  device = await deviceCredentialsFor(api.app, nodeId);
});
afterAll(async () => api?.close());

/** `credentials` are the request's auth headers: `authorization`, and a device request's `dpop` proof. */
function send(
  method: string,
  path: string,
  credentials: Record<string, string>,
  body?: string | Buffer,
  type?: string,
): Promise<Response> {
  const headers: Record<string, string> = { ...credentials };
  if (type !== undefined) headers['content-type'] = type;
  return fetch(`${api.url}${path}`, { method, headers, body });
}

/** The node's headers for one request to `path`: its token under `scheme`, and a fresh DPoP proof. */
async function asDevice(method: string, path: string, scheme = 'DPoP'): Promise<Record<string, string>> {
  const headers = await device.headers(method, `${api.url}${path}`);
  return { ...headers, authorization: `${scheme} ${device.token}` };
}

/** What a refused request must leave as it was: tokens, rollouts, the node's labels, reports. */
async function stored(): Promise<string> {
  const [tokens, rollouts, labels, reports, inventories] = await Promise.all([
    api.db.selectFrom('api_tokens').select(['id', 'revoked_at']).orderBy('id').execute(),
    api.db.selectFrom('rollouts').select('id').execute(),
    api.db.selectFrom('nodes').select('labels').where('id', '=', nodeId).executeTakeFirstOrThrow(),
    api.db.selectFrom('device_reports').select('id').execute(),
    api.db.selectFrom('node_inventory').selectAll().execute(),
  ]);
  return JSON.stringify({ tokens, rollouts, labels, reports, inventories });
}

const BOUNDARY = 'b0undary';
const bodies: Array<[string, string | Buffer, string]> = [
  ['malformed JSON', '{"name":', 'application/json'],
  ['an empty JSON body', '', 'application/json'],
  ['JSON with a __proto__ key', '{"labels":{"__proto__":{"admin":true}}}', 'application/json'],
  ['JSON with constructor.prototype', '{"constructor":{"prototype":{"admin":true}}}', 'application/json'],
  ['XML', '<rollout/>', 'text/xml'],
  ['a form', 'name=x&role=admin', 'application/x-www-form-urlencoded'],
  ['plain text', '{"name":"x","role":"admin"}', 'text/plain'],
  [
    'multipart without a boundary',
    rawMultipart(BOUNDARY, [{ name: 'hardware', value: 'x' }]),
    'multipart/form-data',
  ],
  [
    'multipart cut short',
    rawMultipart(BOUNDARY, [{ name: 'hardware', value: 'x' }], { close: false }),
    `multipart/form-data; boundary=${BOUNDARY}`,
  ],
];
const routes: Array<[string, string, string]> = [
  ['management, JSON', 'POST', '/api/v1/rollouts'],
  ['management, JSON (PUT)', 'PUT', '/api/v1/nodes/:node/labels'],
  ['management, JSON (tokens)', 'POST', '/api/v1/tokens'],
  ['management, multipart', 'POST', '/api/v1/releases'],
  ['device, JSON', 'POST', '/api/v1/devices/me/reports'],
  ['device, JSON (updates)', 'POST', '/api/v1/devices/me/updates'],
  ['device, JSON (PUT inventory)', 'PUT', '/api/v1/devices/me/inventory'],
];

describe('an unauthenticated request is a 401 whatever its body', () => {
  const cases = routes.flatMap(([kind, method, path]) =>
    bodies.map(([name, body, type]) => [kind, name, method, path, body, type] as const),
  );
  it.each(cases)('%s route, %s', async (_kind, _name, method, path, body, type) => {
    const before = await stored();
    const url = path.replace(':node', nodeId);
    for (const authorization of [
      undefined,
      'Bearer otr_forged',
      'DPoP otr_forged',
      'Basic YWRtaW46YWRtaW4=',
    ]) {
      const res = await send(method, url, authorization === undefined ? {} : { authorization }, body, type);
      expect(res.status, `${authorization}`).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
    }
    expect(await stored()).toBe(before);
  });
});

describe('an authenticated request with a body that cannot be used gets the reason', () => {
  type Credentials = (method: string, path: string) => Promise<Record<string, string>>;
  const manage: Credentials = () => Promise.resolve({ authorization: `Bearer ${admin}` });
  const node: Credentials = (method, path) => asDevice(method, path);
  const refusals: Array<[string, string, string, Credentials, string, string, number, RegExp]> = [
    [
      'malformed JSON',
      'POST',
      '/api/v1/rollouts',
      manage,
      '{"name":',
      'application/json',
      400,
      /not valid JSON/,
    ],
    ['an empty JSON body', 'POST', '/api/v1/rollouts', manage, '', 'application/json', 400, /not valid JSON/],
    [
      'a __proto__ label set',
      'PUT',
      '/api/v1/nodes/:node/labels',
      manage,
      '{"labels":{"__proto__":{"admin":"yes"}}}',
      'application/json',
      400,
      /the key "__proto__" is not allowed/,
    ],
    [
      'a constructor label',
      'PUT',
      '/api/v1/nodes/:node/labels',
      manage,
      '{"labels":{"constructor":"x"}}',
      'application/json',
      400,
      /the key "constructor" is not allowed/,
    ],
    ['XML', 'POST', '/api/v1/tokens', manage, '<token/>', 'text/xml', 415, /application\/json/],
    [
      'a form',
      'POST',
      '/api/v1/tokens',
      manage,
      'name=x&role=admin',
      'application/x-www-form-urlencoded',
      415,
      /application\/json/,
    ],
    [
      'a device report with a __proto__ key',
      'POST',
      '/api/v1/devices/me/reports',
      node,
      '{"kind":"health","ok":true,"event":"e","at":"2026-01-01T00:00:00Z","__proto__":{"x":1}}',
      'application/json',
      400,
      /the key "__proto__" is not allowed/,
    ],
    [
      'a device report as text',
      'POST',
      '/api/v1/devices/me/reports',
      node,
      'health ok',
      'text/plain',
      415,
      /application\/json/,
    ],
  ];

  it.each(refusals)('%s: %s %s', async (_name, method, path, auth, body, type, status, reason) => {
    const before = await stored();
    const url = path.replace(':node', nodeId);
    const res = await send(method, url, await auth(method, url), body, type);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { message: string }).message).toMatch(reason);
    expect(await stored()).toBe(before);
  });
});

describe('each scheme is read the same on every route, in any case (RFC 7235): Bearer for management, DPoP for devices', () => {
  it.each([
    ['Bearer', 'DPoP'],
    ['bearer', 'dpop'],
    ['BEARER', 'DPOP'],
  ])('%s works for a management token and %s for a device token', async (bearer, dpop) => {
    expect((await send('GET', '/api/v1/nodes', { authorization: `${bearer} ${admin}` })).status).toBe(200);
    const own = `/api/v1/devices/${nodeId}`;
    expect((await send('GET', own, await asDevice('GET', own, dpop))).status).toBe(200);
    const reports = '/api/v1/devices/me/reports';
    const report = await send(
      'POST',
      reports,
      await asDevice('POST', reports, dpop),
      JSON.stringify({ kind: 'health', ok: true, event: `scheme ${dpop}`, at: new Date().toISOString() }),
      'application/json',
    );
    expect(report.status).toBe(202);

    // Each route reads the other's scheme just as well, and refuses it: a bound device token is never a
    // bearer token (the reason says so, in whatever case it came), and an api token is not a device token.
    const asBearer = await send('GET', own, await asDevice('GET', own, bearer));
    expect(asBearer.status).toBe(401);
    expect(((await asBearer.json()) as { details?: { reason?: string } }).details?.reason).toBe(
      'dpop_required',
    );
    expect((await send('GET', '/api/v1/nodes', { authorization: `${dpop} ${admin}` })).status).toBe(401);
  });

  it.each([
    ['no token', (scheme: string) => scheme],
    ['two tokens', (scheme: string, token: string) => `${scheme} ${token} ${token}`],
    ['another scheme', (_scheme: string, token: string) => `Token ${token}`],
    ['no space', (scheme: string, token: string) => `${scheme}${token}`],
  ])('refuses %s, on management and device routes alike', async (_name, header) => {
    expect((await send('GET', '/api/v1/nodes', { authorization: header('Bearer', admin) })).status).toBe(401);
    // The device request carries a valid proof for its token: only its Authorization header is wrong.
    const own = `/api/v1/devices/${nodeId}`;
    const proven = await asDevice('GET', own);
    expect((await send('GET', own, { ...proven, authorization: header('DPoP', device.token) })).status).toBe(
      401,
    );
  });
});
