// System test of `make demo`: runs scripts/demo.mjs as a user would (OTTER_DEMO_EXIT=1, its own data dir
// and port, the test Redis) against the built apps in dist/, twice on the same data dir.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../scripts/lib/processes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const demoScript = join(root, 'scripts', 'demo.mjs');
const BUILT = ['api', 'delta-worker', 'scheduler', 'cli', 'agent'].map((app) =>
  join(root, 'dist', 'apps', app, 'src', 'main.js'),
);
const STEPS = 7;
const redisUrl = process.env.OTTER_TEST_REDIS_URL ?? '';

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runDemo(env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<DemoRun> {
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
  };
  // The demo's embedded defaults, not whatever the test environment points at.
  for (const name of ['DATABASE_URL', 'OTTER_TOKEN', 'OTTER_SERVER', 'OTTER_HOST', 'OTTER_BLOB_STORE']) {
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

  it('tells the whole story, then again on the same data dir, with byte-identical releases', async () => {
    const port = await freePort();
    const first = await runDemo(demoEnv(dataDir, port));
    expectSuccess(first);

    const images = join(dataDir, 'demo', 'images');
    const base = sha256Of(join(images, 'demo-board-1.0.0.img'));
    const next = sha256Of(join(images, 'demo-board-1.1.0.img'));
    expect(base).not.toBe(next);
    expect(JSON.parse(readFileSync(join(images, 'demo-board-1.1.0.measurements.json'), 'utf8'))).toEqual({
      9: next,
    });
    // Step 1: a development root, and where its key is.
    expect(first.stdout).toContain('DEVELOPMENT root');
    expect(first.stdout).toContain(join(dataDir, 'keys', 'dev-root-key.pem'));
    // Step 3: both pushed for real the first time.
    expect(first.stdout).toContain(`published demo-board 1.0.0  sha256 ${base.slice(0, 16)}`);
    expect(first.stdout).toContain(`published demo-board 1.1.0  sha256 ${next.slice(0, 16)}`);
    // Step 4: the CLI's table.
    expect(first.stdout).toMatch(new RegExp(`demo-board\\s+1\\.1\\.0\\s+${next.slice(0, 12)}`));
    // Step 5: the device's copy is the pushed 1.1.0, byte for byte.
    const deviceCopy = join(dataDir, 'demo', 'device', 'demo-board-1.1.0.img');
    expect(sha256Of(deviceCopy)).toBe(next);
    expect(first.stdout).toContain(`= ${next} = the pushed 1.1.0`);
    expect(first.stdout).toContain(`downloaded ${statSync(deviceCopy).size.toLocaleString('en-US')} bytes`);
    // Step 6: each attack refused for its own reason.
    for (const code of ['TARGET_VERIFICATION_FAILED', 'METADATA_REFRESH_FAILED', 'TARGET_NOT_FOUND']) {
      expect(first.stdout).toMatch(new RegExp(`refused \\(exit code 1\\): otter-agent: ${code}`));
    }
    // The services logged to files, not to the terminal.
    for (const app of ['api', 'delta-worker', 'scheduler']) {
      expect(statSync(join(dataDir, 'demo-logs', `${app}.log`)).size).toBeGreaterThan(0);
    }
    expect(first.stdout).not.toMatch(/^\[api\]/m);
    await expectQueuesRemoved(first);
    // Everything stopped: the port is free again.
    await closeServer(await listenOn(port));

    const second = await runDemo(demoEnv(dataDir, await freePort()));
    expectSuccess(second);
    // Nothing pushed twice: both found published, with the sha256 of the images built again.
    expect(second.stdout).toContain(
      `already published demo-board 1.0.0 by an earlier run  sha256 ${base.slice(0, 16)}`,
    );
    expect(second.stdout).toContain(
      `already published demo-board 1.1.0 by an earlier run  sha256 ${next.slice(0, 16)}`,
    );
    expect(second.stdout).not.toMatch(/^\s+published demo-board/m);
    expect(second.stdout).toContain(`= ${next} = the pushed 1.1.0`);
    expect(sha256Of(join(images, 'demo-board-1.1.0.img'))).toBe(next);
    await expectQueuesRemoved(second);
  }, 200_000);

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
