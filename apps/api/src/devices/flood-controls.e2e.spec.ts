import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollmentRequest } from '#otter/contracts';
import { startSoftwareTpm, Tpm2Tools, type SoftwareTpm } from '#otter/tpm';
import { DirectorFixtures, type TestNode } from '../director/testing/director-fixtures.js';
import { startApi, type ApiHarness } from '../testing/api-harness.js';

// Item 3 of issue 9, attempted as an attacker would against a real api on a real Redis, with a real swtpm for
// the enrollments: bursts on the unauthenticated device routes, too many open enrollments, a node flooding
// what it may write, and a client sending its request too slowly. Each checks that nothing else was slowed or
// refused and that stored state is what it was.

const ENROLL = '/api/v1/devices/enrollments';
const caDir = mkdtempSync(join(tmpdir(), 'otter-flood-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-flood-trust-'));
const apis: ApiHarness[] = [];
let tpm: SoftwareTpm;
let enrollment: EnrollmentRequest;

async function api(env: Record<string, string>): Promise<ApiHarness> {
  const started = await startApi({ OTTER_TPM_CA_DIR: trustDir, ...env });
  apis.push(started);
  return started;
}

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { code?: string; message?: string; details?: Record<string, unknown> };
  ms: number;
}

async function send(
  target: ApiHarness,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; method?: string } = {},
): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(`${target.url}${path}`, {
    method: options.method ?? 'POST',
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: text ? (JSON.parse(text) as Answer['body']) : {},
    ms: performance.now() - started,
  };
}

async function count(target: ApiHarness, table: 'nodes' | 'enrollments'): Promise<number> {
  const row = await target.db
    .selectFrom(table)
    .select(({ fn }) => fn.countAll<number | string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

function expectRateLimited(answer: Answer, limit: 'address' | 'global', windowSeconds: number): void {
  expect(answer.status).toBe(429);
  expect(answer.body.code).toBe('RATE_LIMITED');
  expect(answer.body.message).toMatch(
    limit === 'address' ? /from this address: retry in \d+ s/ : /to this server/,
  );
  expect(answer.body.details).toMatchObject({ limit });
  const retryAfter = Number(answer.retryAfter);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(windowSeconds);
}

beforeAll(async () => {
  tpm = await startSoftwareTpm({ caDir });
  for (const f of tpm.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
  const tools = new Tpm2Tools({ tcti: tpm.tcti, stateDir: mkdtempSync(join(tmpdir(), 'otter-flood-tpm-')) });
  enrollment = {
    hardwareId: 'rpi4',
    ekKind: 'ecc',
    ekCertificate: (await tools.readEkCertificate('ecc')).toString('base64'),
    ekPublic: (await tools.ekPublic('ecc')).toString('base64'),
    akPublic: (await tools.createAttestationKey()).public.toString('base64'),
  };
}, 60_000);

afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await tpm?.stop();
});

describe('a burst on the unauthenticated device routes', () => {
  it('gets 429 with Retry-After past the per-address limit, while management reads and device polls go on', async () => {
    const target = await api({
      OTTER_RATE_LIMIT_ENROLLMENT_PER_ADDRESS: '5',
      OTTER_RATE_LIMIT_WINDOW_SECONDS: '60',
    });
    const fx = new DirectorFixtures(target);
    const image = randomBytes(2000);
    await target.publish('images/rpi4/2.0.0', image, { hardware: 'rpi4', version: '2.0.0' });
    const node = await fx.node();
    await fx.assign(node, '2.0.0', {
      sha256: createHash('sha256').update(image).digest('hex'),
      length: 2000,
    });
    const [nodesBefore, enrollmentsBefore] = [
      await count(target, 'nodes'),
      await count(target, 'enrollments'),
    ];

    let bursting = true;
    const others: Answer[] = [];
    const pollPath = `/tuf/director/${node.id}/metadata/timestamp.json`;
    const alongside = (async () => {
      while (bursting) {
        // The node's poll as it makes it: its bound token and a fresh DPoP proof.
        const pollHeaders = await node.headers('GET', `${target.url}${pollPath}`);
        const [list, poll] = await Promise.all([
          send(target, '/api/v1/nodes', {
            method: 'GET',
            headers: { authorization: `Bearer ${adminToken(target)}` },
          }),
          send(target, pollPath, { method: 'GET', headers: pollHeaders }),
        ]);
        others.push(list, poll);
      }
    })();
    const burst = await Promise.all(
      Array.from({ length: 40 }, () => send(target, ENROLL, { body: enrollment })),
    );
    bursting = false;
    await alongside;

    expect(burst.filter((a) => a.status === 201)).toHaveLength(5);
    const refused = burst.filter((a) => a.status !== 201);
    expect(refused).toHaveLength(35);
    for (const answer of refused) expectRateLimited(answer, 'address', 60);
    // The flooder's own X-Forwarded-For is not believed (no trusted proxy): still the same address.
    expectRateLimited(
      await send(target, ENROLL, { body: enrollment, headers: { 'x-forwarded-for': '203.0.113.77' } }),
      'address',
      60,
    );

    // Nothing else was refused, nor waited on the limiter.
    expect(others.length).toBeGreaterThanOrEqual(2);
    expect(others.map((a) => a.status)).toEqual(others.map(() => 200));
    expect(Math.max(...others.map((a) => a.ms))).toBeLessThan(3_000);
    // Only the five allowed enrollments were stored; no node appeared.
    expect(await count(target, 'enrollments')).toBe(enrollmentsBefore + 5);
    expect(await count(target, 'nodes')).toBe(nodesBefore);
  });

  it('limits activation, identity and token exchange too, each route counted on its own', async () => {
    const target = await api({
      OTTER_RATE_LIMIT_ENROLLMENT_PER_ADDRESS: '3',
      OTTER_RATE_LIMIT_LOGIN_PER_ADDRESS: '3',
    });
    const routes = [
      `${ENROLL}/00000000-0000-4000-8000-000000000000/activation`,
      '/api/v1/devices/00000000-0000-4000-8000-000000000000/identity',
      '/api/v1/devices/token',
    ];
    for (const path of routes) {
      const answers: Answer[] = [];
      for (let i = 0; i < 5; i++) answers.push(await send(target, path, { body: { junk: true } }));
      // Refused on their merits (bad body) until the limit, then refused before the body is even read.
      expect(answers.slice(0, 3).map((a) => a.status)).toEqual([400, 400, 400]);
      for (const answer of answers.slice(3)) expectRateLimited(answer, 'address', 60);
    }
  });
});

describe('a rate limiter that cannot count', () => {
  it('refuses the limited routes with 503 when Redis is unreachable, and serves the others', async () => {
    const target = await api({ REDIS_URL: 'redis://127.0.0.1:1' });
    const refused = await send(target, ENROLL, { body: enrollment });
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('RATE_LIMIT_UNAVAILABLE');
    expect(refused.retryAfter).toBe('5');
    expect(await count(target, 'enrollments')).toBe(0);
    expect((await send(target, '/health', { method: 'GET' })).status).toBe(200);
    const list = await send(target, '/api/v1/nodes', {
      method: 'GET',
      headers: { authorization: `Bearer ${adminToken(target)}` },
    });
    expect(list.status).toBe(200);
  });
});

describe('limits per address and over all addresses, shared by api replicas', () => {
  it('counts one address across two replicas, and refuses everyone once the global limit is reached', async () => {
    const shared = {
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      // The test client stands in for a proxy on loopback that names the real clients.
      OTTER_TRUSTED_PROXIES: '127.0.0.1,::1',
      OTTER_RATE_LIMIT_ENROLLMENT_PER_ADDRESS: '3',
      OTTER_RATE_LIMIT_ENROLLMENT_GLOBAL: '5',
    };
    const [one, two] = [await api(shared), await api(shared)];
    const from = (target: ApiHarness, address: string): Promise<Answer> =>
      send(target, ENROLL, { body: { junk: true }, headers: { 'x-forwarded-for': address } });

    expect((await from(one, '198.51.100.1')).status).toBe(400);
    expect((await from(two, '198.51.100.1')).status).toBe(400);
    expect((await from(one, '198.51.100.1')).status).toBe(400);
    expectRateLimited(await from(two, '198.51.100.1'), 'address', 60);
    // Another address is its own: two more fit under the global limit of five.
    expect((await from(two, '198.51.100.2')).status).toBe(400);
    expect((await from(one, '198.51.100.2')).status).toBe(400);
    expectRateLimited(await from(one, '198.51.100.3'), 'global', 60);
    expectRateLimited(await from(two, '198.51.100.4'), 'global', 60);
  });
});

describe('open enrollments', () => {
  it('refuses a new enrollment with 503 and Retry-After while the cap is full, and takes one again after expiry', async () => {
    const target = await api({ OTTER_MAX_OPEN_ENROLLMENTS: '3', OTTER_ENROLLMENT_TTL: '8' });
    for (let i = 0; i < 3; i++) expect((await send(target, ENROLL, { body: enrollment })).status).toBe(201);
    const before = await count(target, 'enrollments');

    const full = await send(target, ENROLL, { body: enrollment });
    expect(full.status).toBe(503);
    expect(full.body.code).toBe('ENROLLMENT_CAPACITY_REACHED');
    expect(full.body.message).toMatch(/too many enrollments are open \(3 of at most 3\): retry in \d+ s/);
    const retryAfter = Number(full.retryAfter);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(8);
    expect(await count(target, 'enrollments')).toBe(before);
    expect(await count(target, 'nodes')).toBe(0);

    // Once the first challenge has expired, as Retry-After said, there is room again.
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 200));
    expect((await send(target, ENROLL, { body: enrollment })).status).toBe(201);
  }, 60_000);
});

describe('a node flooding what it may write', () => {
  let target: ApiHarness;
  let fx: DirectorFixtures;
  const image = randomBytes(3000);

  beforeAll(async () => {
    target = await api({
      OTTER_RETENTION_REPORTS_PER_NODE: '10',
      OTTER_RETENTION_VERDICTS_PER_NODE: '5',
      OTTER_RETENTION_DOWNLOADS_PER_NODE: '5',
      OTTER_ATTESTATION_NONCES_PER_NODE: '4',
    });
    fx = new DirectorFixtures(target);
    await target.publish('images/rpi4/2.0.0', image, { hardware: 'rpi4', version: '2.0.0' });
  });

  /** A POST as `node`: its bound token and a fresh DPoP proof. */
  const device = async (node: TestNode, path: string, body: unknown): Promise<Answer> => {
    const route = `/api/v1/devices/me/${path}`;
    return send(target, route, { body, headers: await node.headers('POST', `${target.url}${route}`) });
  };

  /** The node's rows, newest first; at most `cap`, plus any written in the same millisecond as the last kept. */
  async function expectCapped(
    table: 'device_reports' | 'attestation_verdicts' | 'downloads',
    node: TestNode,
    cap: number,
  ): Promise<Array<{ created_at: string; [column: string]: unknown }>> {
    const rows = await target.db
      .selectFrom(table as 'device_reports')
      .selectAll()
      .where('node_id', '=', node.id)
      .orderBy('created_at', 'desc')
      .execute();
    expect(rows.length).toBeGreaterThanOrEqual(cap);
    for (const extra of rows.slice(cap)) expect(extra.created_at).toBe(rows[cap - 1]!.created_at);
    return rows;
  }

  it('keeps its reports, verdicts, downloads and nonces bounded, and its neighbour’s rows intact', async () => {
    const flooder = await fx.node();
    const neighbour = await fx.node();
    const at = new Date().toISOString();
    for (let i = 0; i < 3; i++)
      expect(
        (await device(neighbour, 'reports', { kind: 'health', ok: true, event: `n${i}`, at })).status,
      ).toBe(202);

    for (let i = 0; i < 60; i++)
      expect(
        (await device(flooder, 'reports', { kind: 'health', ok: true, event: `e${i}`, at })).status,
      ).toBe(202);
    const reports = await expectCapped('device_reports', flooder, 10);
    expect(reports.slice(0, 10).map((r) => r.event)).toEqual(
      Array.from({ length: 10 }, (_, i) => `e${59 - i}`),
    );

    // Each failed integrity report also stores a failing verdict.
    for (let i = 0; i < 20; i++)
      expect(
        (await device(flooder, 'reports', { kind: 'integrity', ok: false, event: `bad${i}`, at })).status,
      ).toBe(202);
    await expectCapped('attestation_verdicts', flooder, 5);
    const latestPath = `/api/v1/devices/${flooder.id}`;
    const latest = await send(target, latestPath, {
      method: 'GET',
      headers: await flooder.headers('GET', `${target.url}${latestPath}`),
    });
    expect(latest.body).toMatchObject({
      lastVerdict: { passed: false, reason: expect.stringContaining('bad19') },
    });

    const download = {
      targetPath: 'images/rpi4/2.0.0',
      method: 'full',
      bytesDownloaded: 3000,
      fullBytes: 3000,
    };
    for (let i = 0; i < 20; i++) expect((await device(flooder, 'downloads', download)).status).toBe(202);
    await expectCapped('downloads', flooder, 5);

    for (let i = 0; i < 30; i++)
      expect((await device(flooder, 'attestation/challenge', {})).status).toBe(201);
    const redis = new Redis(process.env.OTTER_TEST_REDIS_URL!);
    try {
      expect(await redis.zcard(`${target.config.queuePrefix}:attest-nonces:${flooder.id}`)).toBe(4);
    } finally {
      redis.disconnect();
    }

    const theirs = await target.db
      .selectFrom('device_reports')
      .select('event')
      .where('node_id', '=', neighbour.id)
      .execute();
    expect(theirs.map((r) => r.event).sort()).toEqual(['n0', 'n1', 'n2']);
  });
});

describe('a request sent too slowly', () => {
  it('is answered 408 and cut off after OTTER_REQUEST_TIMEOUT_SECONDS; a slow authenticated release upload is not', async () => {
    const target = await api({ OTTER_REQUEST_TIMEOUT_SECONDS: '1' });
    const port = new URL(target.url).port;
    const enrollmentsBefore = await count(target, 'enrollments');

    // Slowloris: headers, a few bytes of a 500-byte body, then nothing.
    const socket = connect(Number(port), '127.0.0.1');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
    const started = performance.now();
    socket.write(
      `POST ${ENROLL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"hardwareId":`,
    );
    // Meanwhile the api answers everyone else.
    expect((await send(target, '/health', { method: 'GET' })).status).toBe(200);
    const closedAt = await closed;
    expect(closedAt - started).toBeGreaterThanOrEqual(900);
    expect(closedAt - started).toBeLessThan(5_000);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(received).toContain('"code":"REQUEST_TIMEOUT"');
    expect(await count(target, 'enrollments')).toBe(enrollmentsBefore);

    // A release upload streams for as long as it takes (it authenticates before it reads the body).
    const upload = await slowReleaseUpload(target, 2_500);
    expect(upload.status).toBe(201);
  });
});

const adminToken = (target: ApiHarness): string =>
  readFileSync(join(target.config.dataDir, 'admin-token'), 'utf8').trim();

/** A multipart release upload whose image trickles in over `ms`. */
function slowReleaseUpload(target: ApiHarness, ms: number): Promise<{ status: number; body: string }> {
  const boundary = `otter${randomBytes(8).toString('hex')}`;
  const field = (name: string, value: string): string =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const head = Buffer.from(
    field('hardware', 'rpi4') +
      field('version', '7.0.0') +
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="image.img"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const chunks = Array.from({ length: 10 }, () => randomBytes(1000));
  const length = head.length + chunks.reduce((n, c) => n + c.length, 0) + tail.length;
  return new Promise((resolve, reject) => {
    const req = request(
      `${target.url}/api/v1/releases`,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${adminToken(target)}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': length,
        },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.write(head);
    let i = 0;
    const timer = setInterval(() => {
      if (i < chunks.length) req.write(chunks[i++]);
      else {
        clearInterval(timer);
        req.end(tail);
      }
    }, ms / chunks.length);
  });
}
