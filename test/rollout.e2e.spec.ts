import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { INestApplicationContext } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDetailDto, RolloutDto, RolloutNodeDto } from '#otter/contracts';
import { loadConfig } from '#otter/config';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { DeviceAgent } from '../apps/agent/src/device/device-agent.js';
import { expectedPcrAfterBoot } from '../apps/agent/src/platform/measured-boot.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { createScheduler } from '../apps/scheduler/src/create-scheduler.js';

// A rollout end to end: the api and a scheduler sharing one database and Redis, three nodes each on its own
// swtpm running the real `otter-agent run` daemon as a child process (built agent in dist/). One node's
// health check fails after the trial boot: it rolls back, the rollout pauses at its failure threshold, the
// node is excluded, the rollout resumes and completes; the others run the new release from slot B, proven
// by their TPM's attestation of the new measurements.

const distRoot = process.env.OTTER_TEST_DIST_ROOT ?? fileURLToPath(new URL('..', import.meta.url));
const agentMain = join(distRoot, 'dist/apps/agent/src/main.js');
const work = mkdtempSync(join(tmpdir(), 'otter-rollout-'));
const caDir = mkdtempSync(join(tmpdir(), 'otter-tpm-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-tpm-trust-'));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const v1 = randomBytes(300_000);
const v2 = Buffer.concat([v1.subarray(0, 200_000), randomBytes(5_000), v1.subarray(200_000)]);

interface Node {
  id: string;
  tpm: SoftwareTpm;
  dir: string;
  bad: boolean;
  agent?: ChildProcess;
  output: string;
}

let api: ApiHarness;
let scheduler: INestApplicationContext;
let schedulerConfig: ReturnType<typeof loadConfig>;
let imageRoot: string;
let directorRoot: string;
let admin: string;
const nodes: Node[] = [];

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${api.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${admin}`,
      ...(body === undefined || body instanceof FormData ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
  });
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await call(method, path, body);
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

function bootEnv(node: Node): Record<string, string> {
  return (
    JSON.parse(readFileSync(join(node.dir, 'bootenv.json'), 'utf8')) as { variables: Record<string, string> }
  ).variables;
}

async function pushRelease(version: string, image: Buffer): Promise<void> {
  const form = new FormData();
  form.append('hardware', 'board');
  form.append('version', version);
  form.append('measurements', JSON.stringify({ 9: expectedPcrAfterBoot(sha(image)) }));
  form.append('image', new Blob([image]), 'image.bin');
  await json('POST', '/api/v1/releases', form);
}

/** `otter-agent run` for a node, as a child process (the built agent), its output kept for diagnosis. */
function startAgent(node: Node): void {
  node.agent = spawn(
    process.execPath,
    [
      agentMain,
      'run',
      '--state-dir',
      node.dir,
      '--root',
      imageRoot,
      '--director-root',
      directorRoot,
      '--slot-a',
      join(node.dir, 'slot-a.img'),
      '--slot-b',
      join(node.dir, 'slot-b.img'),
      '--boot-env',
      `file:${join(node.dir, 'bootenv.json')}`,
      '--simulate',
      '--poll-interval',
      '0.5',
      '--labels-file',
      join(node.dir, 'labels'),
      ...(node.bad ? ['--health-command', 'echo "service otterd did not start" >&2; exit 1'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  node.agent.stdout!.on('data', (d: Buffer) => (node.output += d.toString()));
  node.agent.stderr!.on('data', (d: Buffer) => (node.output += d.toString()));
}

let apiEnv: Record<string, string>;

beforeAll(async () => {
  const env = {
    OTTER_TPM_CA_DIR: trustDir,
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
    OTTER_ROLLOUT_TICK_SECONDS: '1',
  };
  for (let i = 0; i < 3; i++) {
    const tpm = await startSoftwareTpm({ caDir });
    nodes.push({ id: '', tpm, dir: join(work, `node-${i}`), bad: i === 1, output: '' });
  }
  for (const f of nodes[0]!.tpm.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
  apiEnv = env;
  api = await startApi(env);
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  schedulerConfig = loadConfig({
    ...env,
    OTTER_DATA_DIR: api.config.dataDir,
    OTTER_LOG_LEVEL: 'silent',
    OTTER_ENV: 'test',
  });
  scheduler = await createScheduler(schedulerConfig);
  await pushRelease('1.0.0', v1);
  await pushRelease('2.0.0', v2);

  imageRoot = join(work, 'image-root.json');
  writeFileSync(imageRoot, await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text());
  directorRoot = join(work, 'director-root.json');
  writeFileSync(directorRoot, JSON.stringify(await json('GET', '/api/v1/tuf/director/root')));

  for (const node of nodes) {
    mkdirSync(node.dir, { recursive: true });
    const enroll = (): ReturnType<typeof DeviceAgent.enroll> =>
      DeviceAgent.enroll({
        server: api.url,
        tcti: node.tpm.tcti,
        stateDir: node.dir,
        hardwareId: 'board',
        runningVersion: '1.0.0',
      });
    node.id = (await enroll()).nodeId;
    await json('POST', `/api/v1/nodes/${node.id}/approve`);
    expect((await enroll()).state).toBe('active');
    writeFileSync(join(node.dir, 'slot-a.img'), v1);
    writeFileSync(join(node.dir, 'slot-b.img'), '');
    writeFileSync(
      join(node.dir, 'labels'),
      `# the node's own labels, reported in its inventory\nrack=r${node.id.slice(0, 4)}\n`,
    );
    startAgent(node);
  }
}, 120_000);

afterAll(async () => {
  for (const node of nodes) node.agent?.kill('SIGTERM');
  await scheduler?.close();
  await api?.close();
  await Promise.all(nodes.map((n) => n.tpm.stop()));
});

describe('a rollout across agents on swtpm', () => {
  it('goes wave by wave, rolls the unhealthy node back, pauses, and completes after it is excluded', async () => {
    const created = await json<RolloutDto>('POST', '/api/v1/rollouts', {
      name: 'board 2.0.0',
      hardwareId: 'board',
      version: '2.0.0',
      selector: {},
      waves: [
        { count: 1, soakSeconds: 0 },
        { count: 1, soakSeconds: 0 },
        { count: 1, soakSeconds: 0 },
      ],
      successThreshold: 1,
      failureThreshold: 0.5,
      maxAttestationAgeSeconds: 300,
    });
    await json('POST', `/api/v1/rollouts/${created.id}/start`);
    const rollout = (): Promise<RolloutDto> => json<RolloutDto>('GET', `/api/v1/rollouts/${created.id}`);
    const states = async (): Promise<Record<string, RolloutNodeDto>> =>
      Object.fromEntries(
        (await json<{ nodes: RolloutNodeDto[] }>('GET', `/api/v1/rollouts/${created.id}/nodes`)).nodes.map(
          (n) => [n.nodeId, n],
        ),
      );
    const bad = nodes.find((n) => n.bad)!;
    const diagnose = async (): Promise<string> =>
      `${JSON.stringify(await rollout())}\n${JSON.stringify(await states())}\n${nodes.map((n) => n.output.slice(-3000)).join('\n---\n')}`;

    // The bad node's wave fails it: rolled back (by its own health check), the rollout pauses.
    await expect
      .poll(async () => (await rollout()).state, { timeout: 60_000, interval: 500 })
      .toBe('paused')
      .catch(async (e: unknown) => {
        throw new Error(`${String(e)}\n${await diagnose()}`);
      });
    const paused = await rollout();
    expect(paused.stateReason).toMatch(/failure threshold: wave \d has 1 of 1 nodes failed/);
    expect((await states())[bad.id]).toMatchObject({ state: 'rolled-back' });
    expect((await states())[bad.id]!.reason).toMatch(/health check failed.*otterd did not start/);
    // Back on slot A, running 1.0.0; its assignment went back to 1.0.0 as well. The agent reports the
    // rollback before it reboots, so the booted slot may still be B for a moment.
    await expect
      .poll(() => bootEnv(bad), { timeout: 15_000 })
      .toMatchObject({
        otter_slot: 'a',
        otter_booted_slot: 'a',
        otter_last_trial: 'b:rolled-back:health-check-failed',
      });

    // After the rollback it attests what it runs again, 1.0.0, and passes; it never claims 2.0.0.
    await expect
      .poll(async () =>
        api.db
          .selectFrom('attestation_verdicts')
          .select(['passed', 'release_version'])
          .where('node_id', '=', bad.id)
          .orderBy('created_at', 'desc')
          .limit(1)
          .executeTakeFirst(),
      )
      .toEqual({ passed: 1, release_version: '1.0.0' });
    expect(
      await api.db
        .selectFrom('attestation_verdicts')
        .select('id')
        .where('node_id', '=', bad.id)
        .where('passed', '=', 0)
        .execute(),
    ).toEqual([]);

    await json('POST', `/api/v1/rollouts/${created.id}/nodes/${bad.id}/exclude`, { reason: 'bad board' });
    await json('POST', `/api/v1/rollouts/${created.id}/resume`);
    await expect
      .poll(async () => (await rollout()).state, { timeout: 60_000, interval: 500 })
      .toBe('completed')
      .catch(async (e: unknown) => {
        throw new Error(`${String(e)}\n${await diagnose()}`);
      });

    const final = await states();
    for (const node of nodes.filter((n) => !n.bad)) {
      expect(final[node.id]!.state).toBe('succeeded');
      // The new release is in slot B, committed, and the node's TPM proved it booted it.
      expect(readFileSync(join(node.dir, 'slot-b.img')).equals(v2)).toBe(true);
      expect(bootEnv(node)).toMatchObject({ otter_slot: 'b', otter_booted_slot: 'b' });
      expect(node.output).toMatch(/"step":"committed"/);
    }
    expect(final[bad.id]!.state).toBe('excluded');
    expect(bad.output).not.toMatch(/older than .* installed before|RELEASE_ROLLBACK/);
    // Every step the agents took is recorded, in order, for the timeline.
    const good = nodes.find((n) => !n.bad)!;
    const steps = (
      await api.db
        .selectFrom('device_reports')
        .select('event')
        .where('node_id', '=', good.id)
        .where('kind', '=', 'update')
        .orderBy('created_at')
        .execute()
    ).map((r) => r.event);
    expect(steps).toEqual([
      'assigned',
      'downloading',
      'installed',
      'rebooting',
      'booted',
      'attested',
      'committed',
    ]);

    // The node's story as an operator reads it: the inventory its agent sent once it ran slot B, the update
    // history with bytes, the download, the rollout and the verdict that proved 2.0.0.
    const story = (): Promise<NodeDetailDto> => json<NodeDetailDto>('GET', `/api/v1/nodes/${good.id}`);
    await expect
      .poll(async () => (await story()).inventory?.value.activeSlot, { timeout: 15_000, interval: 500 })
      .toBe('b');
    const detail = await story();
    expect(detail.inventory!.value).toMatchObject({
      bootEnv: 'file',
      bootLoader: 'simulated',
      slots: { a: { version: '1.0.0' }, b: { version: '2.0.0' } },
      agentVersion: expect.stringMatching(/^\d+\.\d+\.\d+$/),
      deviceLabels: { rack: `r${good.id.slice(0, 4)}` },
    });
    expect(detail.inventory!.value.memoryBytes).toBeGreaterThan(0);
    expect(detail.node.lastSeenAt).not.toBeNull();
    expect(detail.attestation.last).toMatchObject({
      passed: true,
      releaseVersion: '2.0.0',
      releaseProven: true,
    });
    expect(detail.updates.steps.find((s) => s.step === 'installed')).toMatchObject({
      version: '2.0.0',
      bytes: expect.any(Number),
    });
    expect(detail.updates.downloads[0]).toMatchObject({ version: '2.0.0', fullBytes: v2.length });
    expect(detail.rollouts).toEqual([
      expect.objectContaining({ rolloutId: created.id, version: '2.0.0', state: 'succeeded' }),
    ]);
  }, 120_000);

  it('asks stale nodes to attest, quarantines one whose boot no longer matches, and survives the api, the scheduler and an agent restarted mid-rollout', async () => {
    const v3 = Buffer.concat([v2.subarray(0, 100_000), randomBytes(3_000), v2.subarray(100_000)]);
    await pushRelease('3.0.0', v3);
    const good = nodes.filter((n) => !n.bad);
    const bad = nodes.find((n) => n.bad)!;
    // The bad node's running slot is modified under it: its next measurement no longer matches 1.0.0's.
    const badSlot = join(bad.dir, 'slot-a.img');
    const tampered = readFileSync(badSlot);
    tampered[10] = tampered[10]! ^ 0xff;
    writeFileSync(badSlot, tampered);
    // Every verdict so far is older than the rollout's maximum age once it starts.
    await new Promise((r) => setTimeout(r, 2500));

    const created = await json<RolloutDto>('POST', '/api/v1/rollouts', {
      name: 'board 3.0.0',
      hardwareId: 'board',
      version: '3.0.0',
      selector: { nodes: nodes.map((n) => n.id) },
      waves: [
        { count: 1, soakSeconds: 0 },
        { percent: 100, soakSeconds: 0 },
      ],
      successThreshold: 1,
      failureThreshold: 0.5,
      maxAttestationAgeSeconds: 2,
    });
    await json('POST', `/api/v1/rollouts/${created.id}/start`);
    const states = async (): Promise<Record<string, RolloutNodeDto>> =>
      Object.fromEntries(
        (await json<{ nodes: RolloutNodeDto[] }>('GET', `/api/v1/rollouts/${created.id}/nodes`)).nodes.map(
          (n) => [n.nodeId, n],
        ),
      );

    // The scheduler and the api die and come back: the rollout carries on from the database.
    await scheduler.close();
    scheduler = await createScheduler(schedulerConfig);
    const port = new URL(api.url).port;
    await api.close();
    api = await startApi({ ...apiEnv, OTTER_DATA_DIR: schedulerConfig.dataDir, OTTER_TEST_PORT: port });

    // An agent killed right after it installed the image, then started again: it reboots into the trial
    // and finishes the update from the boot environment and update.json.
    const victim = good[good.length - 1]!;
    const before = victim.output.length;
    await expect
      .poll(() => victim.output.slice(before).includes('"step":"installed"'), {
        timeout: 60_000,
        interval: 50,
      })
      .toBe(true);
    victim.agent!.kill('SIGKILL');
    startAgent(victim);

    await expect
      .poll(async () => (await json<RolloutDto>('GET', `/api/v1/rollouts/${created.id}`)).state, {
        timeout: 60_000,
        interval: 500,
      })
      .toBe('completed')
      .catch(async (e: unknown) => {
        throw new Error(
          `${String(e)}\n${JSON.stringify(await states())}\n${nodes.map((n) => n.output.slice(-2000)).join('\n---\n')}`,
        );
      });
    const final = await states();
    expect(final[bad.id]).toMatchObject({ state: 'quarantined' });
    expect(final[bad.id]!.reason).toMatch(/attestation failed: .*PCR 9/);
    for (const node of good) {
      expect(final[node.id]!.state).toBe('succeeded');
      // From slot B (2.0.0) to slot A (3.0.0).
      expect(readFileSync(join(node.dir, 'slot-a.img')).equals(v3)).toBe(true);
      expect(bootEnv(node)).toMatchObject({ otter_slot: 'a', otter_booted_slot: 'a' });
    }
    // Asked, then admitted: every node attested after the rollout started, before it was admitted.
    const asked = await api.db
      .selectFrom('attestation_verdicts')
      .select(['node_id', 'created_at'])
      .where('created_at', '>', created.createdAt)
      .execute();
    for (const node of nodes) expect(asked.some((v) => v.node_id === node.id)).toBe(true);
  }, 120_000);

  it('abort: the node already updated keeps the new release, the others stay where they are', async () => {
    const v4 = Buffer.concat([v1.subarray(0, 50_000), randomBytes(2_000), v1.subarray(50_000)]);
    await pushRelease('4.0.0', v4);
    const good = nodes.filter((n) => !n.bad);
    const created = await json<RolloutDto>('POST', '/api/v1/rollouts', {
      name: 'board 4.0.0',
      hardwareId: 'board',
      version: '4.0.0',
      selector: { nodes: good.map((n) => n.id) },
      waves: [
        { count: 1, soakSeconds: 3600 },
        { percent: 100, soakSeconds: 0 },
      ],
      successThreshold: 1,
      failureThreshold: 0.5,
      maxAttestationAgeSeconds: 300,
    });
    await json('POST', `/api/v1/rollouts/${created.id}/start`);
    const states = async (): Promise<RolloutNodeDto[]> =>
      (await json<{ nodes: RolloutNodeDto[] }>('GET', `/api/v1/rollouts/${created.id}/nodes`)).nodes;
    await expect
      .poll(async () => (await states()).filter((n) => n.state === 'succeeded').length, {
        timeout: 60_000,
        interval: 500,
      })
      .toBe(1);
    const aborted = await json<RolloutDto>('POST', `/api/v1/rollouts/${created.id}/abort`, {
      reason: 'wrong build',
    });
    expect(aborted).toMatchObject({ state: 'aborted', stateReason: expect.stringMatching(/wrong build/) });
    const final = await states();
    const updated = good.find((n) => final.find((f) => f.nodeId === n.id)!.state === 'succeeded')!;
    const other = good.find((n) => n !== updated)!;
    expect(final.find((f) => f.nodeId === other.id)!.state).toBe('cancelled');
    // Give the agents a few polls: nothing moves.
    await new Promise((r) => setTimeout(r, 3000));
    expect(readFileSync(join(updated.dir, 'slot-b.img')).equals(v4)).toBe(true);
    expect(bootEnv(updated)).toMatchObject({ otter_slot: 'b' });
    expect(bootEnv(other)).toMatchObject({ otter_slot: 'a' });
    expect(
      readFileSync(join(other.dir, 'slot-a.img')).equals(readFileSync(join(updated.dir, 'slot-a.img'))),
    ).toBe(true);
    expect(other.output).not.toMatch(/"version":"4\.0\.0"/);
  }, 120_000);
});
