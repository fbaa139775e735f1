// System test of `make demo`: runs scripts/demo.mjs as a user would (OTTER_DEMO_EXIT=1, its own data dir
// and port, the test Redis) against the built apps, twice on the same data dir: each run enrolls a fleet of
// 8 agents on swtpm and rolls a release out to it in three waves, with a rollback, a pause, an exclusion, a
// resume and completion.
//
// The apps run from <OTTER_TEST_DIST_ROOT>/dist (default: this repository, which `make test` builds first),
// passed to the demo as OTTER_DEMO_DIST_ROOT. For a scratch build, point OTTER_TEST_DIST_ROOT at a directory
// holding that dist/, a copy of package.json (for the #otter/* imports) and a node_modules symlink.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedPcrAfterBoot } from '../apps/agent/src/platform/measured-boot.js';
import { freePort } from '../scripts/lib/processes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const distRoot = process.env.OTTER_TEST_DIST_ROOT ?? root;
const demoScript = join(root, 'scripts', 'demo.mjs');
const BUILT = ['api', 'delta-worker', 'scheduler', 'cli', 'agent'].map((app) =>
  join(distRoot, 'dist', 'apps', app, 'src', 'main.js'),
);
const STEPS = 9;
const FLEET = 8;
const redisUrl = process.env.OTTER_TEST_REDIS_URL ?? '';

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runDemo(env: NodeJS.ProcessEnv, timeoutMs = 150_000): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [demoScript], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      reject(new Error(`demo still running after ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function demoEnv(dataDir: string, port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OTTER_DEMO_EXIT: '1',
    OTTER_DATA_DIR: dataDir,
    OTTER_PORT: String(port),
    REDIS_URL: redisUrl,
    NO_COLOR: '1',
    OTTER_DEMO_DIST_ROOT: distRoot,
  };
  // The demo's embedded defaults, not whatever the test environment points at.
  for (const name of [
    'DATABASE_URL',
    'OTTER_TOKEN',
    'OTTER_SERVER',
    'OTTER_HOST',
    'OTTER_BLOB_STORE',
    'OTTER_TPM_CA_DIR',
  ]) {
    delete env[name];
  }
  return env;
}

const sha256Of = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => server.close(() => resolve()));

/** Fails with the whole output, so a broken step shows its own diagnosis. */
function expectSuccess(run: DemoRun): void {
  expect(run.code, `demo output:\n${run.stdout}\n--- stderr ---\n${run.stderr}`).toBe(0);
  for (let n = 1; n <= STEPS; n++) expect(run.stdout).toContain(`✓ step ${n}/${STEPS} OK`);
  expect(run.stdout).not.toContain('✗ step');
}

async function expectQueuesRemoved(run: DemoRun): Promise<void> {
  const prefix = /queue prefix (otter-demo-[\w-]+)/.exec(run.stdout)?.[1];
  expect(prefix).toBeDefined();
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  } finally {
    redis.disconnect();
  }
}

/**
 * Steps 4 to 7 and the summary: the fleet enrolled, the timeline's milestones in order, the broken node rolled
 * back and excluded, every other node on 1.1.0 in slot B (read from its files, not the demo's word), deltas.
 */
function expectRollout(run: DemoRun, dataDir: string): void {
  const out = run.stdout;
  expect(out.match(/^\s+node-\d\s+[0-9a-f-]{36}\s+active\s+TPM swtpm:/gm)).toHaveLength(FLEET);
  expect(out).toContain(`${FLEET} agents up: booted slot a (1.0.0)`);

  const bad = /(node-\d) \(wave 2\) gets a fault/.exec(out)?.[1];
  expect(bad, out).toBeDefined();
  const timeline = (pattern: RegExp): number => {
    const index = out.search(pattern);
    expect(index, `no timeline line ${pattern}`).toBeGreaterThan(-1);
    return index;
  };
  const milestones = [
    timeline(/\+\d+\.\ds\s+rollout\s+rollout started: 8 nodes in waves of 1, 3, 4/),
    timeline(/\+\d+\.\ds\s+rollout\s+wave 2 of 3 starts/),
    timeline(
      new RegExp(`\\+\\d+\\.\\ds\\s+${bad}\\s+wave 2\\s+ROLLED BACK: health check failed \\(exit 1\\)`),
    ),
    timeline(
      /\+\d+\.\ds\s+rollout\s+rollout PAUSED: failure threshold: wave 2 has 1 of 3 nodes failed \(33\.3% >= 30%\)/,
    ),
    timeline(new RegExp(`\\+\\d+\\.\\ds\\s+operator\\s+otter rollout exclude ${bad}`)),
    timeline(new RegExp(`\\+\\d+\\.\\ds\\s+${bad}\\s+wave 2\\s+excluded`)),
    timeline(/\+\d+\.\ds\s+operator\s+otter rollout resume/),
    timeline(/\+\d+\.\ds\s+rollout\s+wave 3 of 3 starts/),
    timeline(/\+\d+\.\ds\s+rollout\s+rollout COMPLETED: 7 succeeded, 1 excluded/),
  ];
  expect(milestones).toEqual([...milestones].sort((a, b) => a - b));
  expect(out.match(/installed 1\.1\.0 in slot b \(delta, /g)).toHaveLength(FLEET);
  expect(out.match(/SUCCEEDED: Otter verified a quote of 1\.1\.0's measurements/g)).toHaveLength(FLEET - 1);
  expect(out).toMatch(/bytes saved by deltas: [\d.]+ MiB \(9\d%\): 8 installs of 1\.1\.0 \(8 by delta\)/);
  // The server counted them too: every node reported its delta download.
  expect(out).toMatch(
    /\(every run on this data dir\): (8|16) downloads of 1\.1\.0, .* downloaded, [\d.]+ MiB saved/,
  );

  const fleetDir = join(dataDir, 'demo', 'fleet');
  const next = sha256Of(join(dataDir, 'demo', 'images', 'demo-board-1.1.0.img'));
  const base = sha256Of(join(dataDir, 'demo', 'images', 'demo-board-1.0.0.img'));
  const nodes = readdirSync(fleetDir).filter((d) => d.startsWith('node-'));
  expect(nodes).toHaveLength(FLEET);
  for (const node of nodes) {
    const env = (
      JSON.parse(readFileSync(join(fleetDir, node, 'bootenv.json'), 'utf8')) as {
        variables: Record<string, string>;
      }
    ).variables;
    if (node === bad) {
      expect(env).toMatchObject({
        otter_booted_slot: 'a',
        otter_last_trial: 'b:rolled-back:health-check-failed',
      });
      expect(sha256Of(join(fleetDir, node, 'slot-a.img'))).toBe(base);
      expect(out).toMatch(new RegExp(`^\\s+${node}\\s+2\\s+excluded\\s+a\\s+1\\.0\\.0`, 'm'));
    } else {
      expect(env).toMatchObject({ otter_slot: 'b', otter_booted_slot: 'b' });
      expect(sha256Of(join(fleetDir, node, 'slot-b.img'))).toBe(next);
      expect(out).toMatch(new RegExp(`^\\s+${node}\\s+[123]\\s+succeeded\\s+b\\s+1\\.1\\.0`, 'm'));
    }
  }
}

/** The demo's api port and the swtpm ports it printed can all be listened on again. */
async function expectStopped(run: DemoRun, port: number): Promise<void> {
  const ports = /software TPMs \(swtpm\) in [\d.]+ s, ports ([\d, ]+)/.exec(run.stdout)?.[1];
  expect(ports).toBeDefined();
  const tpmPorts = ports!.split(', ').flatMap((p) => [Number(p), Number(p) + 1]);
  expect(tpmPorts).toHaveLength(2 * FLEET);
  for (const p of [port, ...tpmPorts]) await closeServer(await listenOn(p));
}

describe('make demo (scripts/demo.mjs)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'otter-demo-e2e-'));

  beforeAll(() => {
    const missing = BUILT.filter((file) => !existsSync(file));
    if (missing.length > 0) {
      throw new Error(`not built: ${missing.join(', ')} (make test builds first; or run \`make build\`)`);
    }
    if (!redisUrl) throw new Error('OTTER_TEST_REDIS_URL is not set');
  });

  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('tells the rollout story, then again on the same data dir, with byte-identical releases', async () => {
    const port = await freePort();
    const first = await runDemo(demoEnv(dataDir, port));
    expectSuccess(first);

    const images = join(dataDir, 'demo', 'images');
    const base = sha256Of(join(images, 'demo-board-1.0.0.img'));
    const next = sha256Of(join(images, 'demo-board-1.1.0.img'));
    expect(base).not.toBe(next);
    // The reference measurement is what the agent's simulated measured boot leaves in PCR 9.
    expect(JSON.parse(readFileSync(join(images, 'demo-board-1.1.0.measurements.json'), 'utf8'))).toEqual({
      9: expectedPcrAfterBoot(next),
    });
    // Step 1: a development root, and where its key is.
    expect(first.stdout).toContain('DEVELOPMENT root');
    expect(first.stdout).toContain(join(dataDir, 'keys', 'dev-root-key.pem'));
    // Steps 3 and 5: both pushed for real the first time, and the delta between them built.
    expect(first.stdout).toContain(`published demo-board 1.0.0  sha256 ${base.slice(0, 16)}`);
    expect(first.stdout).toContain(`published demo-board 1.1.0  sha256 ${next.slice(0, 16)}`);
    expect(first.stdout).toMatch(new RegExp(`demo-board\\s+1\\.1\\.0\\s+${next.slice(0, 12)}`));
    expect(first.stdout).toMatch(/demo-board\s+1\.0\.0\s+1\.1\.0\s+published\s+100%/);
    expectRollout(first, dataDir);
    // Step 8: each attack refused for its own reason.
    for (const code of ['TARGET_VERIFICATION_FAILED', 'METADATA_REFRESH_FAILED', 'TARGET_NOT_FOUND']) {
      expect(first.stdout).toMatch(new RegExp(`refused \\(exit code 1\\): otter-agent: ${code}`));
    }
    // The services and the nodes logged to files, not to the terminal.
    for (const app of ['api', 'delta-worker', 'scheduler', 'node-1', `node-${FLEET}`]) {
      expect(statSync(join(dataDir, 'demo-logs', `${app}.log`)).size).toBeGreaterThan(0);
    }
    expect(first.stdout).not.toMatch(/^\[(api|node-\d)\]/m);
    await expectQueuesRemoved(first);
    // Everything stopped: the api's port and every node's swtpm ports are free again.
    await expectStopped(first, port);

    const secondPort = await freePort();
    const second = await runDemo(demoEnv(dataDir, secondPort));
    expectSuccess(second);
    // Nothing pushed twice: both found published, with the sha256 of the images built again.
    expect(second.stdout).toContain(
      `already published demo-board 1.0.0 by an earlier run  sha256 ${base.slice(0, 16)}`,
    );
    expect(second.stdout).toContain(
      `already published demo-board 1.1.0 by an earlier run  sha256 ${next.slice(0, 16)}`,
    );
    expect(second.stdout).not.toMatch(/^\s+published demo-board/m);
    expect(sha256Of(join(images, 'demo-board-1.1.0.img'))).toBe(next);
    // A new fleet, and the first run's nodes (still enrolled) take no part in its rollout.
    expectRollout(second, dataDir);
    await expectQueuesRemoved(second);
    await expectStopped(second, secondPort);
  }, 320_000);

  it('refuses to start when OTTER_PORT is taken, and says so', async () => {
    const port = await freePort();
    const squatter = await listenOn(port);
    const otherDataDir = mkdtempSync(join(tmpdir(), 'otter-demo-port-'));
    try {
      const run = await runDemo(demoEnv(otherDataDir, port), 30_000);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`OTTER_PORT=${port} is taken`);
      expect(run.stdout).not.toContain('step 1/');
    } finally {
      await closeServer(squatter);
      rmSync(otherDataDir, { recursive: true, force: true });
    }
  });
});
