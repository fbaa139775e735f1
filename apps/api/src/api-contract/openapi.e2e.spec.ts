import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApi, type ApiHarness } from '../testing/api-harness.js';

interface Operation {
  security?: Array<Record<string, string[]>>;
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, unknown>;
}
interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

/** The VALIDATION_FAILED example of an operation's 400 answer. */
function validationExample(op: Operation): unknown {
  const answer = op.responses['400'] as
    { content?: Record<string, { examples?: Record<string, { value: unknown }> }> } | undefined;
  return answer?.content?.['application/json']?.examples?.VALIDATION_FAILED?.value;
}

let api: ApiHarness;
let document: OpenApi;

beforeAll(async () => {
  api = await startApi();
  const res = await fetch(`${api.url}/api/openapi.json`);
  expect(res.status).toBe(200);
  document = (await res.json()) as OpenApi;
});
afterAll(() => api.close());

describe('GET /api/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toBe('3.1.0');
    const result = await new Validator().validate(document as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('lists every route the server registered, with its security and error answers', () => {
    const registered = api.conformance.registered;
    const documented = Object.entries(document.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(registered.length).toBeGreaterThan(50);
    expect(registered.filter((r) => !documented.includes(r))).toEqual([]);
    expect(documented.filter((r) => !registered.includes(r))).toEqual([]);
    for (const [path, ops] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.security, `${method} ${path}`).toBeDefined();
        expect(
          Object.keys(op.responses).some((s) => s.startsWith('4')),
          `${method} ${path}`,
        ).toBe(true);
      }
    }
  });

  it('serves Swagger UI from its own files, pointed at the document', async () => {
    const page = await fetch(`${api.url}/api/docs`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    for (const src of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
      const asset = await fetch(`${api.url}${src[1]}`);
      expect(asset.status, src[1]).toBe(200);
      expect((await asset.arrayBuffer()).byteLength, src[1]).toBeGreaterThan(100);
    }
    expect(await (await fetch(`${api.url}/api/docs/swagger-initializer.js`)).text()).toContain(
      "url: '/api/openapi.json'",
    );
    expect((await fetch(`${api.url}/api/docs/..%2Fpackage.json`)).status).toBe(400);
    // The test kit saw (and checked) these answers against the document.
    expect(api.conformance.checked).toBeGreaterThan(5);
  });
});

describe('bad input to every JSON endpoint', () => {
  it('gets a 4xx with the reason, before anything changes', async () => {
    const admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    const before = await Promise.all([
      api.admin('GET', '/api/v1/tokens'),
      api.admin('GET', '/api/v1/rollouts'),
    ]);
    const jsonRoutes = Object.entries(document.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op.requestBody?.content['application/json'])
        .map(([method, op]) => ({ method, path, op })),
    );
    expect(jsonRoutes.length).toBeGreaterThan(15);
    for (const { method, path, op } of jsonRoutes) {
      const url = path
        .replace(/\{role\}/, 'targets')
        .replace(/\{[^}]+\}/g, '7d3f6f5e-0b1a-4c57-9d0e-2f1c3b4a5d6e');
      const management = op.security?.some((s) => 'managementToken' in s) ?? false;
      const device = op.security?.some((s) => 'deviceToken' in s) ?? false;
      for (const body of ['42', '{"unexpected": []}']) {
        const res = await fetch(`${api.url}${url}`, {
          method: method.toUpperCase(),
          headers: {
            'content-type': 'application/json',
            ...(management ? { authorization: `Bearer ${admin}` } : {}),
          },
          body,
        });
        const answer = (await res.json()) as { code: string; message: string; details?: { field?: string } };
        const what = `${method.toUpperCase()} ${path} with ${body}`;
        // A device route authenticates first: without a device token the body is never looked at.
        if (device) {
          expect(res.status, what).toBe(401);
          continue;
        }
        expect(res.status, what).toBe(400);
        expect(answer.code, what).toBe('VALIDATION_FAILED');
        expect(answer.message, what).toMatch(/^invalid request body: \S+: .+/);
        expect(answer.details?.field, what).toBeTruthy();
        // The document's example of this 400 is what the route really answers to an unknown field.
        if (body !== '42') expect(answer, what).toEqual(validationExample(op));
      }
    }
    const after = await Promise.all([
      api.admin('GET', '/api/v1/tokens'),
      api.admin('GET', '/api/v1/rollouts'),
    ]);
    expect(after).toEqual(before);
  });
});
