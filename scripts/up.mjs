#!/usr/bin/env node
// `make up`: runs the built api, delta-worker and scheduler in the foreground on embedded defaults
// (SQLite and blobs under OTTER_DATA_DIR, default ./.otter). Redis is the one thing the embedded mode still
// needs: without REDIS_URL and with nothing on 127.0.0.1:6379, a local redis-server is started as a child.
// Ctrl-C (or SIGTERM) stops everything; if any process exits on its own, the rest are stopped and the exit
// status is non-zero. Every variable in the environment is passed through to the apps.
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessGroup, ensureRedis, waitForHttp } from './lib/processes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const APPS = ['api', 'delta-worker', 'scheduler'];
const entry = (app) => join(root, 'dist', 'apps', app, 'src', 'main.js');
const log = (message) => process.stderr.write(`[up] ${message}\n`);

const missing = APPS.map(entry).filter((file) => !existsSync(file));
if (missing.length > 0) {
  log(`not built: ${missing.map((f) => relative(root, f)).join(', ')} (run \`make up\`, which builds first)`);
  process.exit(1);
}

const group = new ProcessGroup({ graceMs: 10_000 });
let exiting = false;

async function shutdown(code, reason) {
  if (exiting) return;
  exiting = true;
  log(`${reason}: stopping every process`);
  await group.stop();
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // A second Ctrl-C while waiting for graceful shutdown means "now".
    if (exiting) {
      log(`${sig} again: killing every process`);
      group.kill();
      return;
    }
    void shutdown(0, sig);
  });
}

void group.unexpectedExit.then(({ name, code, signal }) =>
  shutdown(1, `${name} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})`),
);

try {
  const env = { ...process.env };
  env.REDIS_URL = await ensureRedis(group, env);
  // The api starts alone and the others wait for its health check: every process migrates the database
  // at boot, and on the embedded SQLite file only one may do so at a time.
  const api = group.start('api', process.execPath, [entry('api')], { env, cwd: root });
  const host =
    !env.OTTER_HOST || env.OTTER_HOST === '0.0.0.0' || env.OTTER_HOST === '::' ? '127.0.0.1' : env.OTTER_HOST;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${env.OTTER_PORT || 8080}`;
  await waitForHttp(`${base}/health`, {
    process: api,
    accept: (status) => status === 200,
    timeoutMs: 120_000,
  });
  for (const app of APPS.slice(1)) group.start(app, process.execPath, [entry(app)], { env, cwd: root });
  log(`Otter is up: ${base} (Redis ${env.REDIS_URL}); Ctrl-C stops everything`);
} catch (error) {
  if (!exiting) {
    log(error instanceof Error ? error.message : String(error));
    await shutdown(1, 'start-up failed');
  }
}
