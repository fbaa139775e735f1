import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDto, NodeListDto } from '#otter/contracts';
import { seedNodeRow, testDatabases } from '#otter/db';
import { startApi, type ApiHarness } from '../testing/api-harness.js';

// PUT /api/v1/nodes/:id/labels against the real api on both databases: labels replace the set, show in the
// node list, and every refusal (bad label, too many, wrong role, unknown node) leaves the stored set alone.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

describe.each(dbs)('node labels on $name', ({ config: database }) => {
  let api: ApiHarness;
  let admin: string;
  let engineer: string;
  let viewer: string;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
    });
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    engineer = await token('release-engineer');
    viewer = await token('viewer');
  });
  afterAll(async () => api?.close());

  async function token(role: string): Promise<string> {
    const res = await call('POST', '/api/v1/tokens', admin, { name: `${role}-${randomUUID()}`, role });
    return ((await res.json()) as { token: string }).token;
  }

  function call(
    method: string,
    path: string,
    auth?: string,
    body?: unknown,
    type = 'application/json',
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (auth) headers.authorization = `Bearer ${auth}`;
    if (body !== undefined) headers['content-type'] = type;
    return fetch(`${api.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  function seedNode(): Promise<string> {
    return seedNodeRow(api.db, { runningVersion: '1.0.0' });
  }

  /** The labels as stored, read from the row rather than through the code under test. */
  async function stored(id: string): Promise<unknown> {
    const row = await api.db
      .selectFrom('nodes')
      .select('labels')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    return JSON.parse(row.labels);
  }

  async function listed(id: string): Promise<NodeDto | undefined> {
    const res = await call('GET', '/api/v1/nodes', viewer);
    expect(res.status).toBe(200);
    return ((await res.json()) as NodeListDto).nodes.find((n) => n.id === id);
  }

  it('a new node has no labels; PUT replaces the set and the node list shows it', async () => {
    const id = await seedNode();
    expect((await listed(id))?.labels).toEqual({});

    const first = { site: 'north', 'topology.example.com/rack': 'r-12', tier: 'canary_1' };
    const res = await call('PUT', `/api/v1/nodes/${id}/labels`, engineer, { labels: first });
    expect(res.status).toBe(200);
    expect((await res.json()) as NodeDto).toMatchObject({ id, state: 'active', labels: first });
    expect(await stored(id)).toEqual(first);
    expect((await listed(id))?.labels).toEqual(first);

    // Replaces, not merges: labels not in the new set are gone. An admin may do it too.
    const second = { site: 'south' };
    expect((await call('PUT', `/api/v1/nodes/${id}/labels`, admin, { labels: second })).status).toBe(200);
    expect((await listed(id))?.labels).toEqual(second);

    expect((await call('PUT', `/api/v1/nodes/${id}/labels`, engineer, { labels: {} })).status).toBe(200);
    expect(await stored(id)).toEqual({});

    const max = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v'.repeat(63)]));
    expect((await call('PUT', `/api/v1/nodes/${id}/labels`, engineer, { labels: max })).status).toBe(200);
    expect(await stored(id)).toEqual(max);
  });

  it('refuses bad labels with a 400 naming the field, and stores nothing', async () => {
    const id = await seedNode();
    const kept = { site: 'north' };
    expect((await call('PUT', `/api/v1/nodes/${id}/labels`, engineer, { labels: kept })).status).toBe(200);

    const tooMany = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v']));
    const bad: Array<[string, unknown, string, RegExp]> = [
      ['a key with a space', { labels: { 'a b': 'x' } }, 'labels.a b', /label key/],
      ['a key starting with a dot', { labels: { '.hidden': 'x' } }, 'labels..hidden', /label key/],
      ['an empty key', { labels: { '': 'x' } }, 'labels.', /label key/],
      ['an empty value', { labels: { site: '' } }, 'labels.site', /label value/],
      ['a value with a newline', { labels: { site: 'a\nb' } }, 'labels.site', /label value/],
      ['a 64-character value', { labels: { site: 'v'.repeat(64) } }, 'labels.site', /label value/],
      ['a number as value', { labels: { site: 3 } }, 'labels.site', /string/],
      ['33 labels', { labels: tooMany }, 'labels', /at most 32 labels/],
      ['labels as an array', { labels: ['site=north'] }, 'labels', /record|object/],
      ['no labels field', {}, 'labels', /.+/],
      ['an unknown field', { labels: {}, merge: true }, 'merge', /Unrecognized/],
    ];
    for (const [what, body, field, reason] of bad) {
      const res = await call('PUT', `/api/v1/nodes/${id}/labels`, engineer, body);
      expect(res.status, what).toBe(400);
      const error = (await res.json()) as { code: string; details: { field: string; reason: string } };
      expect(error.code, what).toBe('VALIDATION_FAILED');
      expect(error.details.field, what).toBe(field);
      expect(error.details.reason, what).toMatch(reason);
    }
    // Fastify's JSON parser refuses a __proto__ key before the body reaches validation.
    const proto = await call('PUT', `/api/v1/nodes/${id}/labels`, engineer, '{"labels":{"__proto__":"x"}}');
    expect(proto.status).toBe(400);
    const form = await call('PUT', `/api/v1/nodes/${id}/labels`, engineer, 'labels=x', 'text/plain');
    expect(form.status).toBe(415);
    expect(await stored(id)).toEqual(kept);
  });

  it('refuses viewers (403) and anonymous callers (401); unknown and malformed node ids are 404 and 400', async () => {
    const id = await seedNode();
    const body = { labels: { site: 'east' } };
    expect((await call('PUT', `/api/v1/nodes/${id}/labels`, viewer, body)).status).toBe(403);
    expect((await call('PUT', `/api/v1/nodes/${id}/labels`, undefined, body)).status).toBe(401);
    expect((await call('PUT', `/api/v1/nodes/${id}/labels`, 'otr_forged', body)).status).toBe(401);
    expect(await stored(id)).toEqual({});

    const unknown = await call('PUT', `/api/v1/nodes/${randomUUID()}/labels`, engineer, body);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { code: string }).code).toBe('NODE_NOT_FOUND');
    expect((await call('PUT', '/api/v1/nodes/not-a-uuid/labels', engineer, body)).status).toBe(400);
  });
});
