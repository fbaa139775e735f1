// Checks the deployment files (deploy/) against the code they deploy, by parsing them: no Docker engine
// or Kubernetes runs here. Also runs scripts/up.mjs and scripts/lib/processes.mjs against stand-in apps.
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
// The schema is not part of #otter/config's public index; this test alone reads it by path to learn the
// full list of variables Otter understands. (zod 4's superRefine keeps the ZodObject, so .shape is there.)

import { configSchema } from '../libs/config/src/config.schema.js';
import { ProcessGroup, ensureRedis, freePort, probeRedis, waitForHttp } from '../scripts/lib/processes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const deploy = join(root, 'deploy');
const read = (...parts: string[]): string => readFileSync(join(root, ...parts), 'utf8');
const CONFIG_KEYS = new Set(Object.keys(configSchema.shape));
const OTTER_APPS = ['api', 'delta-worker', 'scheduler'];
/** Environment variable names that Otter itself reads (as opposed to Postgres', MinIO's, ...). */
const isOtterVariable = (name: string): boolean =>
  /^OTTER_/.test(name) || name === 'DATABASE_URL' || name === 'REDIS_URL';

type Env = Record<string, string>;
interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Env;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
const compose = parse(read('deploy', 'compose.yaml'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

/** Applies compose's ${VAR}, ${VAR:-default}, ${VAR:?error} interpolation with `vars` as the .env file. */
function interpolate(value: string, vars: Env): string {
  return value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g,
    (_m, name: string, colon, op, arg: string) => {
      const set = colon ? !!vars[name] : name in vars;
      if (set) return vars[name];
      if (op === '?') throw new Error(`${name} is required: ${arg}`);
      return op === '-' ? arg : '';
    },
  );
}

/** The variables deploy/.env.example asks for, filled with throw-away values of a valid shape. */
function exampleEnvFile(): Env {
  const names = [...read('deploy', '.env.example').matchAll(/^([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]);
  return Object.fromEntries(names.map((n) => [n, `test-${n.toLowerCase().replace(/_/g, '-')}`]));
}

describe('deploy/compose.yaml', () => {
  it('runs api, delta-worker, scheduler, PostgreSQL 16, Redis 7, MinIO and a bucket-creating one-shot', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['api', 'delta-worker', 'minio', 'minio-init', 'postgres', 'redis', 'scheduler'].sort(),
    );
    expect(services.postgres.image).toBe('postgres:16');
    expect(services.redis.image).toBe('redis:7');
    expect(services.minio.image).toMatch(/minio\/minio/);
    expect(services['minio-init'].image).toMatch(/minio\/mc/);
    expect(services['minio-init'].command?.join(' ')).toMatch(/mc mb --ignore-existing/);
    expect(services.api.command).toEqual(['node', 'dist/apps/api/src/main.js']);
    expect(services.api.ports).toContain('8443:8443');
    for (const app of OTTER_APPS) {
      expect(services[app].command).toEqual(['node', `dist/apps/${app}/src/main.js`]);
    }
  });

  it('gives every Otter process the same production configuration over PostgreSQL, Redis and S3', () => {
    const required = {
      OTTER_ENV: 'production',
      OTTER_BLOB_STORE: 's3',
      OTTER_DATA_DIR: '/var/lib/otter',
      OTTER_S3_FORCE_PATH_STYLE: 'true',
      REDIS_URL: 'redis://redis:6379',
    };
    const shared = [
      'DATABASE_URL',
      'OTTER_S3_ENDPOINT',
      'OTTER_S3_BUCKET',
      'OTTER_S3_ACCESS_KEY_ID',
      'OTTER_S3_SECRET_ACCESS_KEY',
      'OTTER_KEY_PASSPHRASE',
    ];
    const first = services.api.environment ?? {};
    for (const app of OTTER_APPS) {
      const env = services[app].environment ?? {};
      expect(env, app).toMatchObject(required);
      expect(env.DATABASE_URL, app).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//);
      for (const name of shared) expect(env[name], `${app} ${name}`).toBe(first[name]);
      // The online TUF keys live in the data dir: all three mount the same volume there.
      expect(services[app].volumes, app).toContain('otter-data:/var/lib/otter');
    }
    expect(compose.volumes).toHaveProperty('otter-data');
    // In a container the api must listen beyond loopback, or nothing (healthcheck aside) reaches it.
    expect(services.api.environment?.OTTER_HOST).toBe('0.0.0.0');
  });

  it('names only variables that Otter config knows', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const key of Object.keys(service.environment ?? {}).filter(isOtterVariable)) {
        expect(CONFIG_KEYS.has(key), `${name}: ${key} is not in configSchema`).toBe(true);
      }
    }
  });

  it('writes no secret into the file: each comes from deploy/.env and compose refuses to start without it', () => {
    const env = services.api.environment ?? {};
    for (const name of ['OTTER_KEY_PASSPHRASE', 'OTTER_S3_ACCESS_KEY_ID', 'OTTER_S3_SECRET_ACCESS_KEY']) {
      expect(env[name], name).toMatch(new RegExp(`^\\$\\{${name}:\\?[^}]+\\}$`));
    }
    expect(env.DATABASE_URL).toMatch(/^postgres:\/\/otter:\$\{POSTGRES_PASSWORD:\?[^}]+\}@/);
    expect(services.postgres.environment?.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
    expect(services.minio.environment?.MINIO_ROOT_PASSWORD).toMatch(/^\$\{MINIO_ROOT_PASSWORD:\?/);
    // Without the .env file, interpolation fails on the passphrase instead of starting with a blank one.
    expect(() => interpolate(env.OTTER_KEY_PASSPHRASE, {})).toThrow(/OTTER_KEY_PASSPHRASE is required/);
    expect(read('deploy', '.gitignore')).toMatch(/^\.env$/m);
  });

  it('passes the production rules of the config schema once deploy/.env.example is filled in', () => {
    const vars = exampleEnvFile();
    for (const app of OTTER_APPS) {
      // As loadConfig reads them: a variable set to '' is unset.
      const env = Object.fromEntries(
        Object.entries(services[app].environment ?? {})
          .map(([k, v]) => [k, interpolate(String(v), vars)])
          .filter(([, v]) => v !== ''),
      );
      const parsed = configSchema.safeParse(env);
      expect(parsed.success ? [] : parsed.error.issues, app).toEqual([]);
    }
    // Every service interpolates only variables .env.example documents (or that have defaults).
    for (const service of Object.values(services)) {
      for (const value of Object.values(service.environment ?? {}))
        expect(() => interpolate(String(value), vars)).not.toThrow();
    }
  });

  it('depends only on services that exist, with conditions they can meet, and no cycle', () => {
    const conditions = new Set(['service_started', 'service_healthy', 'service_completed_successfully']);
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(services, `${name} depends on ${dep}`).toHaveProperty([dep]);
        expect(conditions.has(condition), `${name} -> ${dep}: ${condition}`).toBe(true);
        if (condition === 'service_healthy')
          expect(services[dep].healthcheck, `${dep} needs a healthcheck`).toBeDefined();
      }
    }
    const visit = (name: string, path: string[]): void => {
      expect(path, `cycle: ${[...path, name].join(' -> ')}`).not.toContain(name);
      for (const dep of Object.keys(services[name].depends_on ?? {})) visit(dep, [...path, name]);
    };
    for (const name of Object.keys(services)) visit(name, []);
    for (const app of OTTER_APPS) {
      expect(services[app].depends_on).toMatchObject({
        postgres: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
        'minio-init': { condition: 'service_completed_successfully' },
      });
    }
  });

  it('health-checks the api on GET /readyz (what dependents wait for), the workers on their metrics port', () => {
    const test = services.api.healthcheck?.test.join(' ') ?? '';
    expect(test).toMatch(
      /require\('node:https'\)\.get\(\{ host: '127\.0\.0\.1', port: 8443, path: '\/readyz'/,
    );
    for (const app of ['delta-worker', 'scheduler']) {
      const env = services[app].environment ?? {};
      expect(env, app).toMatchObject({ OTTER_METRICS_PORT: '9464', OTTER_METRICS_HOST: '0.0.0.0' });
      expect(services[app].healthcheck?.test.join(' '), app).toMatch(
        /require\('node:http'\)\.get\(\{ host: '127\.0\.0\.1', port: 9464, path: '\/metrics' \}/,
      );
      // Scraped inside the compose network only.
      expect(services[app].ports, app).toBeUndefined();
    }
    // The metrics token comes from deploy/.env, like every secret, and is optional.
    expect(services.api.environment?.OTTER_METRICS_TOKEN).toBe('${OTTER_METRICS_TOKEN:-}');
  });

  it('terminates TLS in the api, with the certificate and key mounted read-only and never in git', () => {
    const env = services.api.environment ?? {};
    expect(env).toMatchObject({
      OTTER_PORT: '8443',
      OTTER_TLS_CERT: '/etc/otter/tls/tls.crt',
      OTTER_TLS_KEY: '/etc/otter/tls/tls.key',
    });
    expect(services.api.volumes).toContain('./tls:/etc/otter/tls:ro');
    // Agents reach this api directly, so a device's DPoP proof is checked once per connection by default.
    expect(interpolate(String(env.OTTER_DPOP_CONNECTION_BINDING), {})).toBe('auto');
    expect(read('deploy', '.gitignore')).toMatch(/^tls\/$/m);
    // What the api then loads: the schema takes the pair (and refuses half of it).
    const vars = exampleEnvFile();
    const resolved = Object.fromEntries(
      Object.entries(env)
        .map(([k, v]) => [k, interpolate(String(v), vars)])
        .filter(([, v]) => v !== ''),
    );
    expect(configSchema.safeParse(resolved).success).toBe(true);
    expect(configSchema.safeParse({ ...resolved, OTTER_TLS_KEY: undefined }).success).toBe(false);
  });
});

const chart = join(deploy, 'helm', 'otter');
const templatesDir = join(chart, 'templates');
const templates = existsSync(templatesDir)
  ? Object.fromEntries(readdirSync(templatesDir).map((f) => [f, readFileSync(join(templatesDir, f), 'utf8')]))
  : {};
const allTemplates = Object.values(templates).join('\n');
const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as Record<string, unknown>;

describe('deploy/helm/otter', () => {
  it('is a v2 chart named otter with the expected templates', () => {
    const meta = parse(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as Record<string, string>;
    expect(meta).toMatchObject({ apiVersion: 'v2', name: 'otter', type: 'application' });
    expect(meta.version).toMatch(/^\d+\.\d+\.\d+/);
    for (const file of [
      '_helpers.tpl',
      'api-deployment.yaml',
      'api-service.yaml',
      'delta-worker-deployment.yaml',
      'scheduler-deployment.yaml',
      'data-pvc.yaml',
    ]) {
      expect(Object.keys(templates), file).toContain(file);
    }
  });

  it('reads only values that values.yaml defines', () => {
    const refs = new Set(
      [...allTemplates.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((m) => m[1].slice(1)),
    );
    expect(refs.size).toBeGreaterThan(10);
    for (const ref of refs) {
      let node: unknown = values;
      for (const key of ref.split('.')) {
        expect(
          node !== null && typeof node === 'object' && key in node,
          `.Values.${ref} is not in values.yaml`,
        ).toBe(true);
        node = (node as Record<string, unknown>)[key];
      }
    }
  });

  it('includes only templates it defines', () => {
    const defined = new Set([...allTemplates.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1]));
    for (const [, name] of allTemplates.matchAll(/include\s+"([^"]+)"/g)) {
      expect(defined.has(name), `include "${name}" has no define`).toBe(true);
    }
  });

  it('names only variables that Otter config knows, and takes every credential from a Secret', () => {
    const names = [...allTemplates.matchAll(/-\s+name:\s+([A-Z][A-Z0-9_]*)\s*$/gm)].map((m) => m[1]);
    const otterNames = names.filter(isOtterVariable);
    expect(otterNames).toEqual(expect.arrayContaining(['OTTER_KEY_PASSPHRASE', 'DATABASE_URL', 'REDIS_URL']));
    for (const name of otterNames) expect(CONFIG_KEYS.has(name), `${name} is not in configSchema`).toBe(true);
    for (const secret of [
      'OTTER_KEY_PASSPHRASE',
      'DATABASE_URL',
      'OTTER_S3_ACCESS_KEY_ID',
      'OTTER_S3_SECRET_ACCESS_KEY',
    ]) {
      expect(allTemplates, secret).toMatch(
        new RegExp(`- name: ${secret}\\n\\s+valueFrom:\\n\\s+secretKeyRef:`),
      );
    }
    expect(allTemplates).toMatch(/required "secrets\.existingSecret is required/);
  });

  it('serves the api over TLS from a kubernetes.io/tls Secret, probed over HTTPS, unless told otherwise', () => {
    const api = templates['api-deployment.yaml'];
    expect(values).toMatchObject({ tls: { enabled: true, existingSecret: '' }, api: { port: 8443 } });
    expect(api).toMatch(
      /- name: OTTER_TLS_CERT\n\s+value: \{\{ printf "%s\/tls\.crt" \.Values\.tls\.mountPath/,
    );
    expect(api).toMatch(
      /- name: OTTER_TLS_KEY\n\s+value: \{\{ printf "%s\/tls\.key" \.Values\.tls\.mountPath/,
    );
    expect(api).toMatch(/required "tls\.existingSecret is required while tls\.enabled/);
    expect(api).toContain('scheme: {{ ternary "HTTPS" "HTTP" .Values.tls.enabled }}');
    expect(api).toMatch(/- name: OTTER_PUBLIC_URL\n\s+value: \{\{ \. \| quote \}\}/);
    expect(templates['NOTES.txt']).toMatch(/WARNING: tls\.enabled is false/);
    // The api decides: per connection only where the pods hold TLS and trust no proxy (an ingress in front).
    expect(values).toMatchObject({ dpopConnectionBinding: 'auto' });
  });

  it('runs the three apps from one image, the api with replicas from values, live on /health, ready on /readyz', () => {
    for (const app of OTTER_APPS) {
      expect(templates[`${app}-deployment.yaml`]).toContain(
        `command: ["node", "dist/apps/${app}/src/main.js"]`,
      );
      expect(templates[`${app}-deployment.yaml`]).toContain('include "otter.image" .');
    }
    const api = templates['api-deployment.yaml'];
    expect(api).toContain('replicas: {{ .Values.api.replicas }}');
    for (const [probe, path] of [
      ['startupProbe', '/health'],
      ['livenessProbe', '/health'],
      ['readinessProbe', '/readyz'],
    ]) {
      expect(api).toMatch(new RegExp(`${probe}:\\n\\s+httpGet:\\n\\s+path: ${path}\\n`));
    }
    // The workers serve metrics on metrics.port, which their liveness probe checks; every pod is annotated
    // for scraping, and the metrics token (optional) comes from the Secret.
    expect(values).toMatchObject({ metrics: { enabled: true, port: 9464 } });
    for (const app of ['delta-worker', 'scheduler']) {
      const template = templates[`${app}-deployment.yaml`];
      expect(template, app).toContain('include "otter.workerMetricsEnv" .');
      expect(template, app).toContain('include "otter.workerMetricsPort" .');
      expect(template, app).toContain('include "otter.scrapeAnnotations"');
    }
    expect(api).toContain('include "otter.scrapeAnnotations"');
    const helpers = templates['_helpers.tpl'];
    expect(helpers).toMatch(
      /- name: OTTER_METRICS_PORT\n\s+value: \{\{ \.Values\.metrics\.port \| quote \}\}/,
    );
    expect(helpers).toMatch(/livenessProbe:\n\s+tcpSocket:\n\s+port: metrics/);
    expect(helpers).toMatch(/- name: OTTER_METRICS_TOKEN\n\s+valueFrom:\n\s+secretKeyRef:/);
    expect(values).toMatchObject({ scheduler: { replicas: 2 }, dataDir: { mountPath: '/var/lib/otter' } });
    expect(templates['_helpers.tpl']).toMatch(
      /- name: OTTER_DATA_DIR\n\s+value: \{\{ \.Values\.dataDir\.mountPath/,
    );
  });
});

describe('deploy/Dockerfile', () => {
  const dockerfile = read('deploy', 'Dockerfile');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it('builds in stages on Node 24 and runs as a non-root user', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24\b/m);
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toContain('npx tsc -p tsconfig.build.json');
    // Install scripts must run (better-sqlite3), limited by package.json allowScripts, not switched off.
    expect(instructions.join('\n')).not.toContain('--ignore-scripts');
    const lastStage = instructions.slice(instructions.lastIndexOf(froms[froms.length - 1]));
    const user = lastStage.filter((l) => l.startsWith('USER ')).pop();
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)\b/);
  });

  it('copies only files that exist', () => {
    for (const line of instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
      const parts = line
        .split(/\s+/)
        .slice(1)
        .filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) expect(existsSync(join(root, source)), source).toBe(true);
    }
  });

  it('starts only apps whose sources exist, at the path the build emits them to', () => {
    const build = JSON.parse(read('tsconfig.build.json')) as { extends: string; include: string[] };
    const base = JSON.parse(read('tsconfig.json')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    expect(build.include).toEqual(expect.arrayContaining(['apps', 'libs']));
    expect(base.compilerOptions).toMatchObject({ rootDir: '.', outDir: 'dist' });
    const everywhere = [
      dockerfile,
      read('deploy', 'compose.yaml'),
      allTemplates,
      read('scripts', 'up.mjs'),
    ].join('\n');
    const apps = new Set([...everywhere.matchAll(/dist\/apps\/([a-z-]+)\/src\/main\.js/g)].map((m) => m[1]));
    expect([...apps].sort()).toEqual([...OTTER_APPS].sort());
    for (const app of apps)
      expect(existsSync(join(root, 'apps', app, 'src', 'main.ts')), `apps/${app}/src/main.ts`).toBe(true);
    expect(dockerfile).toContain('CMD ["node", "dist/apps/api/src/main.js"]');
  });
});

describe('deploy/systemd/otter-agent.service', () => {
  const unitFile = join(deploy, 'systemd', 'otter-agent.service');
  const unit: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const line of readFileSync(unitFile, 'utf8').split('\n')) {
    const header = /^\[(\w+)\]$/.exec(line.trim());
    if (header) section = header[1];
    const kv = /^(\w+)=(.*)$/.exec(line.trim());
    if (kv) ((unit[section] ??= {})[kv[1]] ??= []).push(kv[2]);
  }

  it('runs the agent daemon on its state dir, with every option `otter-agent run` requires, and always restarts it', () => {
    const [execStart] = unit.Service.ExecStart;
    expect(execStart).toMatch(/^\/usr\/local\/bin\/otter-agent run --state-dir \/var\/lib\/otter-agent /);
    const command = readFileSync(
      join(deploy, '..', 'apps', 'agent', 'src', 'commands', 'run.command.ts'),
      'utf8',
    );
    const required = [...command.matchAll(/requiredOption\('(--[a-z-]+)/g)].map((m) => m[1]);
    const known = [...command.matchAll(/[oO]ption\(\s*'(--[a-z-]+)/g)].map((m) => m[1]);
    expect(required.length).toBeGreaterThan(4);
    for (const option of required) expect(execStart).toContain(` ${option} `);
    for (const option of execStart!.match(/ --[a-z-]+/g)!) expect(known).toContain(option.trim());
    expect(execStart).not.toContain('--simulate');
    expect(unit.Service.Restart).toEqual(['always']);
    expect(unit.Install.WantedBy).toEqual(['multi-user.target']);
  });

  it('talks to the server over TLS only: never --insecure-http, a private CA from an optional env file', () => {
    const unit = readFileSync(unitFile, 'utf8');
    expect(unit).not.toMatch(/--insecure-http|OTTER_INSECURE_HTTP=/);
    expect(unit).toMatch(/^EnvironmentFile=-\/etc\/otter-agent\/agent\.env$/m);
    expect(unit).toMatch(/OTTER_CA_FILE=/);
  });

  it('is hardened, with only the state dir writable', () => {
    expect(unit.Service).toMatchObject({
      NoNewPrivileges: ['yes'],
      ProtectSystem: ['strict'],
      ReadWritePaths: ['/var/lib/otter-agent'],
      PrivateTmp: ['yes'],
      ProtectHome: ['yes'],
    });
  });

  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  it.skipIf(!analyze)('passes systemd-analyze verify (with a stand-in binary)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-unit-'));
    try {
      const copy = join(dir, 'otter-agent.service');
      writeFileSync(copy, readFileSync(unitFile, 'utf8').replace('/usr/local/bin/otter-agent', '/bin/true'));
      const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
      expect(result.stderr + result.stdout).toBe('');
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('scripts/up.mjs and scripts/lib/processes.mjs', () => {
  const temp: string[] = [];
  afterAll(() => {
    for (const dir of temp) rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of scripts/ next to stand-in dist/apps/<app>/src/main.js files, as `make build` would leave. */
  function fakeCheckout(apps: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), 'otter-up-'));
    temp.push(dir);
    cpSync(join(root, 'scripts', 'up.mjs'), join(dir, 'scripts', 'up.mjs'));
    cpSync(join(root, 'scripts', 'lib', 'processes.mjs'), join(dir, 'scripts', 'lib', 'processes.mjs'));
    for (const [app, code] of Object.entries(apps)) {
      mkdirSync(join(dir, 'dist', 'apps', app, 'src'), { recursive: true });
      writeFileSync(join(dir, 'dist', 'apps', app, 'src', 'main.js'), code);
    }
    return dir;
  }
  const fakeApi = `import { createServer } from 'node:http';
const server = createServer((req, res) => { res.writeHead(req.url === '/health' ? 200 : 404); res.end(); });
server.listen(Number(process.env.OTTER_PORT), '127.0.0.1', () => console.log('listening, redis ' + process.env.REDIS_URL));
process.on('SIGTERM', () => { console.log('got SIGTERM'); server.close(); });`;
  const fakeWorker = (exitAfterMs?: number): string => `console.log('started');
const timer = setInterval(() => {}, 1000);
process.on('SIGTERM', () => { console.log('got SIGTERM'); clearInterval(timer); });
${exitAfterMs === undefined ? '' : `setTimeout(() => process.exit(3), ${exitAfterMs});`}`;

  function runUp(
    dir: string,
    port: number,
  ): { output: () => string; exited: Promise<number | null>; kill: (s: NodeJS.Signals) => void } {
    const child = spawn(process.execPath, [join(dir, 'scripts', 'up.mjs')], {
      env: {
        ...process.env,
        OTTER_PORT: String(port),
        REDIS_URL: process.env.OTTER_TEST_REDIS_URL,
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    return {
      output: () => output,
      // 'close', not 'exit': only then has all of up's output been read (its last lines could still be in the pipe).
      exited: new Promise((resolve) => child.once('close', (code) => resolve(code))),
      kill: (s) => child.kill(s),
    };
  }
  async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('starts the three apps with prefixed output and stops them all on SIGTERM', async () => {
    const dir = fakeCheckout({ api: fakeApi, 'delta-worker': fakeWorker(), scheduler: fakeWorker() });
    const up = runUp(dir, await freePort());
    await until(() => up.output().includes('Otter is up'), 'Otter is up');
    for (const app of ['delta-worker', 'scheduler'])
      await until(() => up.output().includes(`[${app}] started`), app);
    expect(up.output()).toContain(`[api] listening, redis ${process.env.OTTER_TEST_REDIS_URL}`);
    expect(up.output()).toContain('[delta-worker] started');
    up.kill('SIGTERM');
    expect(await up.exited).toBe(0);
    for (const app of OTTER_APPS) expect(up.output()).toContain(`[${app}] got SIGTERM`);
  });

  it('stops the rest and exits non-zero when one app exits on its own', async () => {
    const dir = fakeCheckout({ api: fakeApi, 'delta-worker': fakeWorker(), scheduler: fakeWorker(300) });
    const up = runUp(dir, await freePort());
    expect(await up.exited).not.toBe(0);
    expect(up.output()).toMatch(/scheduler exited unexpectedly \(exit code 3\)/);
    expect(up.output()).toContain('[api] got SIGTERM');
    expect(up.output()).toContain('[delta-worker] got SIGTERM');
  });

  it('refuses to start when the build is missing', async () => {
    const dir = fakeCheckout({ api: fakeApi });
    const up = runUp(dir, await freePort());
    expect(await up.exited).toBe(1);
    expect(up.output()).toMatch(/not built: .*delta-worker.*scheduler/);
  });

  it('SIGKILLs a child that ignores SIGTERM once the grace period is over', async () => {
    const group = new ProcessGroup({ graceMs: 300 });
    const stubborn = group.start('stubborn', process.execPath, [
      '-e',
      "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000);",
    ]);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await group.stop();
    expect((await stubborn.exited).signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('fails waitForHttp at once when the process dies before it answers', async () => {
    const group = new ProcessGroup({ graceMs: 300 });
    const dies = group.start('dies', process.execPath, ['-e', 'process.exit(2)']);
    const port = await freePort();
    await expect(
      waitForHttp(`http://127.0.0.1:${port}/health`, { process: dies, timeoutMs: 10_000 }),
    ).rejects.toThrow(/dies exited before/);
    expect(await group.unexpectedExit).toEqual({ name: 'dies', code: 2, signal: null });
    await group.stop();
  });

  it('starts a loopback redis-server when none answers, and stops it with the group', async () => {
    const group = new ProcessGroup({ graceMs: 2_000 });
    const port = await freePort();
    const url = await ensureRedis(group, {}, { port });
    expect(url).toBe(`redis://127.0.0.1:${port}`);
    expect(await probeRedis(port)).toBe('redis');
    // An existing Redis or an explicit REDIS_URL is used as it is, without starting another.
    expect(await ensureRedis(group, {}, { port })).toBe(url);
    expect(await ensureRedis(group, { REDIS_URL: 'redis://elsewhere:1' }, { port })).toBe(
      'redis://elsewhere:1',
    );
    expect(group.children.map((c) => c.name)).toEqual(['redis']);
    await group.stop();
    expect(await probeRedis(port)).toBe('none');
  });
});
