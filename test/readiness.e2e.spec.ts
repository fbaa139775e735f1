import 'reflect-metadata';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { ProcessGroup, ensureRedis, freePort } from '../scripts/lib/processes.mjs';

// /readyz against a private redis-server of this test (never the shared one): stopped, the api stays live
// (/health) but is not ready, and names Redis; started again on the same port, the api is ready again.

const groups: ProcessGroup[] = [];
let api: ApiHarness | undefined;
afterAll(async () => {
  await api?.close();
  for (const group of groups) await group.stop();
});

async function startRedis(port: number): Promise<string> {
  const group = new ProcessGroup({ graceMs: 2_000 });
  groups.push(group);
  // redis-server's log is not this test's output.
  return ensureRedis(group, {}, { port, output: new PassThrough().resume() });
}

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${api!.url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function until(
  status: number,
  timeoutMs: number,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await readyz();
    if (answer.status === status || Date.now() > deadline) return answer;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('GET /readyz', () => {
  it('is 200 while the database, Redis and the blob store answer, 503 naming Redis while it is down', async () => {
    const port = await freePort();
    const redisUrl = await startRedis(port);
    api = await startApi({ REDIS_URL: redisUrl });

    const ready = await readyz();
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ok',
      details: { database: { status: 'up' }, redis: { status: 'up' }, blobStore: { status: 'up' } },
    });

    await groups[0].stop();
    const down = await until(503, 10_000);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({
      code: 'NOT_READY',
      message: expect.stringMatching(/^not ready: redis \(/),
      details: {
        failing: ['redis'],
        checks: { database: { status: 'up' }, redis: { status: 'down' }, blobStore: { status: 'up' } },
      },
    });
    // Liveness is not readiness: the process itself is fine.
    expect((await fetch(`${api.url}/health`)).status).toBe(200);
    // A scrape does not hang on the missing Redis: the queue depths are left out, the rest answers.
    const started = Date.now();
    const scrape = await fetch(`${api.url}/metrics`);
    expect(scrape.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(5_000);
    const text = await scrape.text();
    expect(text).toMatch(/^otter_nodes|^# TYPE otter_nodes gauge/m);
    expect(text).not.toMatch(/^otter_queue_jobs\{/m);

    await startRedis(port);
    const back = await until(200, 15_000);
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ status: 'ok' });
  });
});
