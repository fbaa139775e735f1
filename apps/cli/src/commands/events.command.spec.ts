import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventPublisher } from '#otter/events';
import { RolloutFixtures } from '../../../api/src/rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../../../api/src/testing/api-harness.js';
import { EventStreamService } from '../../../api/src/events/event-stream.service.js';
import { RAW_TERMINAL_CONTROL, runOtter } from '../testing/cli-run.js';

// `otter events` and `otter rollout watch` against a real api and Redis; events are published with the api's
// own publisher, as its services do.

let api: ApiHarness;
let admin: string;
let publisher: EventPublisher;
const cwd = mkdtempSync(join(tmpdir(), 'otter-events-cli-'));
const otter = (args: string[]) => runOtter(args, api.url, admin, cwd);

beforeAll(async () => {
  api = await startApi();
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  publisher = api.app.get(EventPublisher);
});
afterAll(async () => api?.close());

describe('otter events', () => {
  it('prints what the stream holds, one line per event, a device’s text escaped, and exits', async () => {
    const hardwareId = `hw-${randomUUID()}`;
    const nodeId = randomUUID();
    await publisher.publishAll([
      { kind: 'release.published', hardwareId, releaseId: randomUUID(), version: '2.0.0', length: 2048 },
      {
        kind: 'rollout.node.step',
        hardwareId,
        nodeId,
        step: 'failed',
        version: '2.0.0',
        reason: 'boom\u001b[2J\r\nfake line',
      },
    ]);
    const run = await otter(['events', '--hardware', hardwareId]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/Z {2}release\.published {2}.* 2\.0\.0 \(2\.0 KiB\)$/);
    expect(lines[1]).toContain(
      `rollout.node.step  node ${nodeId}: failed 2.0.0: boom\\u001b[2J\\r\\nfake line`,
    );
    expect(run.stdout).not.toMatch(RAW_TERMINAL_CONTROL);
  });

  it('--json prints one object per line with its stream id; --kind filters, prefixes too', async () => {
    const hardwareId = `hw-${randomUUID()}`;
    const ids = await publisher.publishAll([
      { kind: 'node.approved', hardwareId, nodeId: randomUUID() },
      { kind: 'node.revoked', hardwareId, nodeId: randomUUID() },
      { kind: 'release.published', hardwareId, releaseId: randomUUID(), version: '1.0.0', length: 1 },
    ]);
    const run = await otter(['events', '--hardware', hardwareId, '--kind', 'node.*', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const parsed = run.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; event: { kind: string } });
    expect(parsed.map((p) => p.id)).toEqual(ids.slice(0, 2));
    expect(parsed.map((p) => p.event.kind)).toEqual(['node.approved', 'node.revoked']);
    const after = await otter(['events', '--hardware', hardwareId, '--after', ids[1]!, '--json']);
    expect(
      after.stdout
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id),
    ).toEqual([ids[2]]);
  });

  it('refuses an unknown kind or a bad stream id as a usage error, before any request', async () => {
    const bad = await otter(['events', '--kind', 'rollout.nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no event kind rollout\.nope/);
    expect((await otter(['events', '--after', 'yesterday'])).code).toBe(2);
  });

  it('--follow prints events as they are published', async () => {
    const hardwareId = `hw-${randomUUID()}`;
    const streams = api.app.get(EventStreamService);
    const before = streams.openStreams;
    const running = otter(['events', '--follow', '--hardware', hardwareId]);
    await expect.poll(() => streams.openStreams).toBe(before + 1);
    await publisher.publish({ kind: 'node.approved', hardwareId, nodeId: 'n-1' });
    // Give the line its moment to arrive, then end the follow from the server side, as a shutdown would.
    await new Promise((r) => setTimeout(r, 300));
    streams.beforeApplicationShutdown();
    const run = await running;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/node\.approved {2}n-1 \(hw-/);
  });
});

describe('otter rollout watch', () => {
  it('prints the rollout’s events until it completes (not a TTY), then its final state', async () => {
    const fixtures = new RolloutFixtures(api);
    const hardwareId = `hw-${randomUUID().slice(0, 8)}`;
    const release = await fixtures.release(hardwareId, '2.0.0');
    const nodeId = await fixtures.node(hardwareId, '1.0.0');
    const rolloutId = await fixtures.rolloutRows({ id: release.id, hardwareId }, [nodeId], {
      state: 'running',
      nodeState: 'assigned',
      admittedAt: new Date(),
      nodeDeadlineSeconds: 600,
    });
    const ids = { rolloutId, hardwareId };
    const streams = api.app.get(EventStreamService);
    const before = streams.openStreams;
    const running = otter(['rollout', 'watch', rolloutId]);
    await expect.poll(() => streams.openStreams).toBe(before + 1);
    await publisher.publishAll([
      { kind: 'rollout.node.step', ...ids, nodeId, step: 'downloading', version: '2.0.0', bytes: 1500 },
      { kind: 'rollout.node.step', ...ids, nodeId, step: 'committed', version: '2.0.0' },
      { kind: 'rollout.node.succeeded', ...ids, nodeId },
      { kind: 'rollout.completed', ...ids },
    ]);
    const run = await running;
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split('  ')[1])).toEqual([
      'rollout.node.step',
      'rollout.node.step',
      'rollout.node.succeeded',
      'rollout.completed',
      undefined,
    ]);
    expect(lines.at(-1)).toBe(`rollout ${rolloutId} completed`);
    // The watch closed its stream when the rollout ended.
    await expect.poll(() => streams.openStreams).toBe(before);
  });

  it('returns at once for a rollout that already ended, and fails for one that does not exist', async () => {
    const fixtures = new RolloutFixtures(api);
    const hardwareId = `hw-${randomUUID().slice(0, 8)}`;
    const release = await fixtures.release(hardwareId, '2.0.0');
    const rolloutId = await fixtures.rolloutRows({ id: release.id, hardwareId }, [], {
      state: 'aborted',
      nodeState: 'cancelled',
      admittedAt: new Date(),
      nodeDeadlineSeconds: 600,
    });
    const done = await otter(['rollout', 'watch', rolloutId]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(new RegExp(`^rollout ${rolloutId} aborted`));
    const missing = await otter(['rollout', 'watch', randomUUID()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no rollout/);
  });
});
