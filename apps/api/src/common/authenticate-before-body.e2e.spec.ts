import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedNodeRow } from '#otter/db';
import { DeviceTokenService } from '#otter/identity';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { rawMultipart } from '../testing/raw-multipart.js';

// Issue 9 item 7, by attack against a real api: one reading of `Authorization` on every route (the scheme is
// case-insensitive, RFC 7235), and a body is judged only once its sender is known: an unauthenticated request
// is a 401 whatever its body, never a 400 or 415 that tells a stranger how the body was read.

let api: ApiHarness;
let admin: string;
let nodeId: string;
let deviceToken: string;

beforeAll(async () => {
  api = await startApi();
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  nodeId = await seedNodeRow(api.db, { hardwareId: 'rpi4', labels: { site: 'north' } });
  deviceToken = (await api.app.get(DeviceTokenService).issueAccessToken(nodeId)).token;
});
afterAll(async () => api?.close());

function send(
  method: string,
  path: string,
  authorization: string | undefined,
  body?: string | Buffer,
  type?: string,
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  if (type !== undefined) headers['content-type'] = type;
  return fetch(`${api.url}${path}`, { method, headers, body });
}

/** What a refused request must leave as it was: tokens, rollouts, the node's labels, reports. */
async function stored(): Promise<string> {
  const [tokens, rollouts, labels, reports] = await Promise.all([
    api.db.selectFrom('api_tokens').select(['id', 'revoked_at']).orderBy('id').execute(),
    api.db.selectFrom('rollouts').select('id').execute(),
    api.db.selectFrom('nodes').select('labels').where('id', '=', nodeId).executeTakeFirstOrThrow(),
    api.db.selectFrom('device_reports').select('id').execute(),
  ]);
  return JSON.stringify({ tokens, rollouts, labels, reports });
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
];

describe('an unauthenticated request is a 401 whatever its body', () => {
  const cases = routes.flatMap(([kind, method, path]) =>
    bodies.map(([name, body, type]) => [kind, name, method, path, body, type] as const),
  );
  it.each(cases)('%s route, %s', async (_kind, _name, method, path, body, type) => {
    const before = await stored();
    const url = path.replace(':node', nodeId);
    for (const authorization of [undefined, 'Bearer otr_forged', 'Basic YWRtaW46YWRtaW4=']) {
      const res = await send(method, url, authorization, body, type);
      expect(res.status, `${authorization}`).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
    }
    expect(await stored()).toBe(before);
  });
});

describe('an authenticated request with a body that cannot be used gets the reason', () => {
  const manage = (): string => `Bearer ${admin}`;
  const device = (): string => `Bearer ${deviceToken}`;
  const refusals: Array<[string, string, string, () => string, string, string, number, RegExp]> = [
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
      device,
      '{"kind":"health","ok":true,"event":"e","at":"2026-01-01T00:00:00Z","__proto__":{"x":1}}',
      'application/json',
      400,
      /the key "__proto__" is not allowed/,
    ],
    [
      'a device report as text',
      'POST',
      '/api/v1/devices/me/reports',
      device,
      'health ok',
      'text/plain',
      415,
      /application\/json/,
    ],
  ];

  it.each(refusals)('%s: %s %s', async (_name, method, path, auth, body, type, status, reason) => {
    const before = await stored();
    const res = await send(method, path.replace(':node', nodeId), auth(), body, type);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { message: string }).message).toMatch(reason);
    expect(await stored()).toBe(before);
  });
});

describe('the Bearer scheme is read the same on every route, in any case (RFC 7235)', () => {
  it.each(['Bearer', 'bearer', 'BEARER'])(
    '%s works for a management token and for a device token',
    async (scheme) => {
      expect((await send('GET', '/api/v1/nodes', `${scheme} ${admin}`)).status).toBe(200);
      expect((await send('GET', `/api/v1/devices/${nodeId}`, `${scheme} ${deviceToken}`)).status).toBe(200);
      const report = await send(
        'POST',
        '/api/v1/devices/me/reports',
        `${scheme} ${deviceToken}`,
        JSON.stringify({ kind: 'health', ok: true, event: `scheme ${scheme}`, at: new Date().toISOString() }),
        'application/json',
      );
      expect(report.status).toBe(202);
    },
  );

  it.each([
    ['no token', 'Bearer'],
    ['two tokens', `Bearer ${admin} ${admin}`],
    ['another scheme', `Token ${admin}`],
    ['no space', `Bearer${admin}`],
  ])('refuses %s, on management and device routes alike', async (_name, header) => {
    const deviceHeader = header.replaceAll(admin, deviceToken);
    expect((await send('GET', '/api/v1/nodes', header)).status).toBe(401);
    expect((await send('GET', `/api/v1/devices/${nodeId}`, deviceHeader)).status).toBe(401);
  });
});
