import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CreatedTokenDto, ReleaseDto, TokenDto } from '#otter/contracts';
import type { CliContext } from './cli-context.js';
import { runCli } from './main.js';

const TOKEN = 'otr_cli_test_admin';
const execFileAsync = promisify(execFile);

interface Upload {
  partOrder: string[];
  fields: Record<string, string>;
  sha256: string;
  bytes: number;
}

/** A contract-following stand-in for the management API: real Fastify and @fastify/multipart. */
async function startFakeApi(): Promise<{
  app: FastifyInstance;
  url: string;
  requests: string[];
  uploads: Upload[];
  releases: ReleaseDto[];
  tokens: TokenDto[];
}> {
  const requests: string[] = [];
  const uploads: Upload[] = [];
  const releases: ReleaseDto[] = [];
  const tokens: TokenDto[] = [];
  const app = Fastify();
  const fail = (statusCode: number, code: string, message: string) => ({ statusCode, code, message });

  app.addHook('onRequest', async (req, reply) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return reply.code(401).send(fail(401, 'UNAUTHENTICATED', 'missing or invalid bearer token'));
    }
  });
  await app.register(multipart, { limits: { fileSize: Number.MAX_SAFE_INTEGER } });

  app.post('/api/v1/releases', async (req, reply) => {
    const upload: Upload = { partOrder: [], fields: {}, sha256: '', bytes: 0 };
    for await (const part of req.parts()) {
      upload.partOrder.push(part.fieldname);
      if (part.type === 'file') {
        const hash = createHash('sha256');
        for await (const chunk of part.file as AsyncIterable<Buffer>) {
          hash.update(chunk);
          upload.bytes += chunk.length;
        }
        upload.sha256 = hash.digest('hex');
      } else {
        upload.fields[part.fieldname] = String(part.value);
      }
    }
    uploads.push(upload);
    const { hardware, version, measurements, notes } = upload.fields;
    if (releases.some((r) => r.hardwareId === hardware && r.version === version)) {
      return reply
        .code(409)
        .send(fail(409, 'RELEASE_DUPLICATE', `release ${version} for ${hardware} already exists`));
    }
    const release: ReleaseDto = {
      id: randomUUID(),
      hardwareId: hardware,
      version,
      targetPath: `${hardware}/${version}.img`,
      sha256: upload.sha256,
      length: upload.bytes,
      measurements: measurements ? (JSON.parse(measurements) as Record<string, string>) : {},
      notes: notes ?? '',
      createdAt: new Date().toISOString(),
      createdBy: 'cli-test',
    };
    releases.unshift(release);
    return reply.code(201).send(release);
  });
  app.get<{ Querystring: { hardware?: string } }>('/api/v1/releases', async (req) => ({
    releases: releases.filter((r) => !req.query.hardware || r.hardwareId === req.query.hardware),
  }));
  app.post<{ Body: { name: string; role: TokenDto['role'] } }>('/api/v1/tokens', async (req, reply) => {
    const token: TokenDto = {
      id: randomUUID(),
      name: req.body.name,
      role: req.body.role,
      createdAt: new Date().toISOString(),
      revokedAt: null,
    };
    tokens.push(token);
    const created: CreatedTokenDto = { ...token, token: 'otr_new_secret' };
    return reply.code(201).send(created);
  });
  app.get('/api/v1/tokens', async () => ({ tokens }));
  app.delete<{ Params: { id: string } }>('/api/v1/tokens/:id', async (req, reply) => {
    const token = tokens.find((t) => t.id === req.params.id);
    if (!token) return reply.code(404).send(fail(404, 'NOT_FOUND', `no token ${req.params.id}`));
    token.revokedAt = new Date().toISOString();
    return reply.code(204).send();
  });

  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return { app, url: `http://127.0.0.1:${address.port}`, requests, uploads, releases, tokens };
}

class Capture extends Writable {
  text = '';
  isTTY?: boolean;
  columns = 120;
  constructor(tty = false) {
    super();
    if (tty) this.isTTY = true;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const dir = mkdtempSync(join(tmpdir(), 'otter-cli-'));

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const GOOD_DIGEST = 'ab'.repeat(32);

describe('otter CLI', () => {
  let api: Awaited<ReturnType<typeof startFakeApi>>;
  let env: NodeJS.ProcessEnv;

  async function otter(args: string[], opts: { env?: NodeJS.ProcessEnv; tty?: boolean } = {}): Promise<Run> {
    const stdout = new Capture();
    const stderr = new Capture(opts.tty);
    const ctx: CliContext = { env: opts.env ?? env, cwd: dir, stdout, stderr };
    const code = await runCli(args, ctx);
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  beforeAll(async () => {
    api = await startFakeApi();
  });
  beforeEach(() => {
    env = { OTTER_SERVER: api.url, OTTER_TOKEN: TOKEN };
  });
  afterAll(async () => {
    await api.app.close();
  });

  it('release push uploads the image byte-identical and prints the created release as JSON', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 1);
    const image = file('push.img', data);
    const measurements = file('m.json', JSON.stringify({ '0': GOOD_DIGEST, '23': 'cd'.repeat(32) }));
    const run = await otter([
      'release',
      'push',
      '--hardware',
      'rpi4',
      '--version',
      '1.0.0',
      '--measurements',
      measurements,
      '--notes',
      'first',
      image,
    ]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const release = JSON.parse(run.stdout) as ReleaseDto;
    const sha = createHash('sha256').update(data).digest('hex');
    expect(release).toMatchObject({ hardwareId: 'rpi4', version: '1.0.0', sha256: sha, length: data.length });
    expect(release.measurements).toEqual({ '0': GOOD_DIGEST, '23': 'cd'.repeat(32) });
    expect(api.uploads.at(-1)).toMatchObject({
      partOrder: ['hardware', 'version', 'measurements', 'notes', 'image'],
      sha256: sha,
    });
  });

  it('release push draws a progress bar with bytes, percent, rate and ETA on a TTY stderr only', async () => {
    const image = file('tty.img', randomBytes(3 * 1024 * 1024));
    const tty = await otter(['release', 'push', '--hardware', 'rpi4', '--version', '1.0.1', image], {
      tty: true,
    });
    expect(tty.code).toBe(0);
    expect(tty.stderr).toContain('100%');
    expect(tty.stderr).toContain('3.0 MiB / 3.0 MiB');
    expect(tty.stderr).toMatch(/\/s \| ETA /);
    expect(JSON.parse(tty.stdout)).toMatchObject({ version: '1.0.1' });
  });

  it('release push refuses a bad measurements file before any request reaches the server', async () => {
    const image = file('never-sent.img', randomBytes(1024));
    const cases: Array<[string, string, RegExp]> = [
      ['pcr24.json', JSON.stringify({ '24': GOOD_DIGEST }), /PCR index "24" is not one of "0".."23"/],
      ['pcrneg.json', JSON.stringify({ '-1': GOOD_DIGEST }), /PCR index "-1"/],
      ['nonhex.json', JSON.stringify({ '7': 'zz'.repeat(32) }), /PCR 7 digest .* is not a sha256 hex string/],
      ['short.json', JSON.stringify({ '7': 'ab'.repeat(31) }), /PCR 7 digest/],
      ['upper.json', JSON.stringify({ '7': 'AB'.repeat(32) }), /PCR 7 digest/],
      ['array.json', JSON.stringify([GOOD_DIGEST]), /expected a JSON object/],
      ['broken.json', '{"0": ', /not valid JSON/],
      // The server's rule: refused, not dropped (JSON.parse keeps it; a copy into an object loses it).
      [
        'proto.json',
        `{"7":"${GOOD_DIGEST}","__proto__":"${GOOD_DIGEST}"}`,
        /the key "__proto__" is not allowed/,
      ],
    ];
    const before = api.requests.length;
    for (const [name, content, message] of cases) {
      const path = file(name, content);
      const run = await otter([
        'release',
        'push',
        '--hardware',
        'rpi4',
        '--version',
        '9.9.9',
        '--measurements',
        path,
        image,
      ]);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^error: measurements file /);
      expect(run.stderr).toContain(path);
      expect(run.stderr).toMatch(message);
    }
    const missing = await otter([
      'release',
      'push',
      '--hardware',
      'rpi4',
      '--version',
      '9.9.9',
      '--measurements',
      join(dir, 'nope.json'),
      image,
    ]);
    expect(missing.stderr).toMatch(/^error: cannot read measurements file .*nope\.json/);
    expect(api.requests.length).toBe(before);
  });

  it('release push refuses bad hardware, version and a missing image before any request', async () => {
    const image = file('ok.img', 'x');
    const before = api.requests.length;
    const bad = [
      [['--hardware', 'RPi 4', '--version', '1.0.0', image], /hardware id "RPi 4"/],
      [['--hardware', 'rpi4', '--version', 'v1.0.0', image], /version "v1.0.0" is not a semantic version/],
      [
        ['--hardware', 'rpi4', '--version', '1.0.0', join(dir, 'missing.img')],
        /image .*missing\.img not found/,
      ],
      [['--hardware', 'rpi4', '--version', '1.0.0', dir], /is not a regular file/],
    ] as const;
    for (const [args, message] of bad) {
      const run = await otter(['release', 'push', ...args]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(message);
    }
    expect(api.requests.length).toBe(before);
  });

  it('release push shows status, code and message of an API error: 409 on a second push', async () => {
    const image = file('dup.img', randomBytes(2048));
    const args = ['release', 'push', '--hardware', 'dup', '--version', '2.0.0', image];
    expect((await otter(args)).code).toBe(0);
    const again = await otter(args);
    expect(again).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 409 RELEASE_DUPLICATE: release 2.0.0 for dup already exists\n',
    });
  });

  it('shows 401 UNAUTHENTICATED for a wrong token', async () => {
    const run = await otter(['release', 'list'], { env: { OTTER_SERVER: api.url, OTTER_TOKEN: 'wrong' } });
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 401 UNAUTHENTICATED: missing or invalid bearer token\n',
    });
  });

  it('uses $OTTER_DATA_DIR/admin-token when OTTER_TOKEN is unset, and names both sources when neither exists', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'otter-cli-data-'));
    const noToken = await otter(['release', 'list'], {
      env: { OTTER_SERVER: api.url, OTTER_DATA_DIR: dataDir },
    });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/^error: no API token: set OTTER_TOKEN/);
    expect(noToken.stderr).toContain(join(dataDir, 'admin-token'));

    writeFileSync(join(dataDir, 'admin-token'), `${TOKEN}\n`);
    const withFile = await otter(['release', 'list', '--json'], {
      env: { OTTER_SERVER: api.url, OTTER_DATA_DIR: dataDir },
    });
    expect(withFile.code).toBe(0);
  });

  it('release list prints a table by default and the API list with --json, filtered by --hardware', async () => {
    const image = file('list.img', randomBytes(1536));
    for (const version of ['1.0.0', '1.1.0']) {
      expect(
        (await otter(['release', 'push', '--hardware', 'lister', '--version', version, image])).code,
      ).toBe(0);
    }
    const table = await otter(['release', 'list', '--hardware', 'lister']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0].split(/\s+/)).toEqual(['HARDWARE', 'VERSION', 'SHA256', 'SIZE', 'CREATED']);
    expect(lines).toHaveLength(3);
    const sha = createHash('sha256').update(readFileSync(image)).digest('hex');
    expect(lines[1]).toMatch(
      new RegExp(
        `^lister\\s+1\\.1\\.0\\s+${sha.slice(0, 12)}\\s+1\\.5 KiB\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z$`,
      ),
    );
    expect(lines[1]).not.toContain(sha.slice(0, 13));

    const json = await otter(['release', 'list', '--hardware', 'lister', '--json']);
    const parsed = JSON.parse(json.stdout) as { releases: ReleaseDto[] };
    expect(parsed.releases.map((r) => r.version)).toEqual(['1.1.0', '1.0.0']);

    const none = await otter(['release', 'list', '--hardware', 'nothing-here']);
    expect(none).toEqual({ code: 0, stdout: '', stderr: 'no releases\n' });
  });

  it('token create, list and revoke', async () => {
    const created = await otter(['token', 'create', '--name', 'ci', '--role', 'release-engineer']);
    expect(created.code).toBe(0);
    const token = JSON.parse(created.stdout) as CreatedTokenDto;
    expect(token).toMatchObject({ name: 'ci', role: 'release-engineer', token: 'otr_new_secret' });
    expect(created.stderr).toMatch(/cannot be shown again/);

    const table = await otter(['token', 'list']);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+ROLE\s+CREATED\s+REVOKED\n/);
    expect(table.stdout).toMatch(new RegExp(`${token.id}\\s+ci\\s+release-engineer\\s+\\S+\\s+-\\n`));

    expect(await otter(['token', 'revoke', token.id])).toEqual({
      code: 0,
      stdout: `revoked token ${token.id}\n`,
      stderr: '',
    });
    const json = JSON.parse((await otter(['token', 'list', '--json'])).stdout) as { tokens: TokenDto[] };
    expect(json.tokens.find((t) => t.id === token.id)?.revokedAt).toEqual(expect.any(String));

    const unknown = await otter(['token', 'revoke', 'no-such-id']);
    expect(unknown).toMatchObject({ code: 1, stderr: 'error: 404 NOT_FOUND: no token no-such-id\n' });
  });

  it('rejects usage errors (unknown role, missing option) with exit code 1 and no request', async () => {
    const before = api.requests.length;
    const role = await otter(['token', 'create', '--name', 'x', '--role', 'root']);
    expect(role.code).toBe(1);
    expect(role.stderr).toMatch(/^error: option '--role <role>' argument 'root' is invalid/);
    const missing = await otter(['release', 'push', '--version', '1.0.0', 'x.img']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: required option '--hardware <id>' not specified/);
    expect(api.requests.length).toBe(before);
  });

  it('prints help with exit code 0', async () => {
    const help = await otter(['release', 'push', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--measurements <file>');
  });

  it('refuses an http:// server that is not loopback before any request, saying how to fix it', async () => {
    // 0.0.0.0 reaches this host's fake api, but by its name it is not loopback: the rule sees a remote server.
    const remote = api.url.replace('127.0.0.1', '0.0.0.0');
    const before = api.requests.length;
    const run = await otter(['token', 'list'], { env: { OTTER_SERVER: remote, OTTER_TOKEN: TOKEN } });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^error: refusing http:\/\/0\.0\.0\.0:\d+: tokens would cross the network in clear/,
    );
    expect(run.stderr).toMatch(/--insecure-http/);
    expect(api.requests.length).toBe(before);
    // Loopback by any of its names is fine.
    const local = await otter(['token', 'list'], {
      env: { OTTER_SERVER: api.url.replace('127.0.0.1', 'localhost'), OTTER_TOKEN: TOKEN },
    });
    expect([local.code, local.stderr]).toEqual([0, '']);
  });

  it('--insecure-http (or OTTER_INSECURE_HTTP=1) lets it through, with a warning on every run', async () => {
    const remote = api.url.replace('127.0.0.1', '0.0.0.0');
    for (const [args, extra] of [
      [['--insecure-http', 'token', 'list'], {}],
      [['--insecure-http', 'token', 'list'], {}],
      [['token', 'list'], { OTTER_INSECURE_HTTP: '1' }],
    ] as const) {
      const run = await otter([...args], { env: { OTTER_SERVER: remote, OTTER_TOKEN: TOKEN, ...extra } });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(
        /^WARNING: --insecure-http: talking to http:\/\/0\.0\.0\.0:\d+ over plain HTTP/,
      );
    }
  });

  it('reports an unreachable server clearly', async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as AddressInfo;
    await new Promise((r) => probe.close(r));
    const run = await otter(['token', 'list'], {
      env: { OTTER_SERVER: `http://127.0.0.1:${port}`, OTTER_TOKEN: TOKEN },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`^error: GET http://127\\.0\\.0\\.1:${port}/api/v1/tokens failed: .*ECONNREFUSED`),
    );
  });
});

describe('bin/otter running the compiled CLI', () => {
  const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
  const work = mkdtempSync(join(tmpdir(), 'otter-bin-'));
  // A throwaway repo: the CLI compiled to its dist/, the real package.json (ESM, #otter/* imports) and
  // node_modules, and a copy of bin/otter reached through a symlink from elsewhere.
  const repo = join(work, 'repo');
  const otterLink = join(work, 'elsewhere', 'otter');
  let api: Awaited<ReturnType<typeof startFakeApi>>;

  beforeAll(async () => {
    mkdirSync(join(repo, 'bin'), { recursive: true });
    mkdirSync(dirname(otterLink));
    writeFileSync(
      join(work, 'tsconfig.json'),
      JSON.stringify({
        extends: join(repoRoot, 'tsconfig.json'),
        compilerOptions: {
          noEmit: false,
          sourceMap: false,
          rootDir: repoRoot,
          outDir: join(repo, 'dist'),
          typeRoots: [join(repoRoot, 'node_modules/@types')],
        },
        include: [],
        files: [join(repoRoot, 'apps/cli/src/main.ts')],
      }),
    );
    // Types are checked by the project's own typecheck; this only emits.
    await execFileAsync(process.execPath, [
      join(repoRoot, 'node_modules/typescript/bin/tsc'),
      '-p',
      join(work, 'tsconfig.json'),
      '--noCheck',
    ]);
    copyFileSync(join(repoRoot, 'package.json'), join(repo, 'package.json'));
    symlinkSync(join(repoRoot, 'node_modules'), join(repo, 'node_modules'));
    copyFileSync(join(repoRoot, 'bin/otter'), join(repo, 'bin/otter'));
    chmodSync(join(repo, 'bin/otter'), 0o755);
    symlinkSync(join(repo, 'bin/otter'), otterLink);
    api = await startFakeApi();
  }, 60_000);
  afterAll(async () => {
    await api?.app.close();
  });

  async function otterBin(args: string[]): Promise<Run> {
    const env = {
      PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
      OTTER_SERVER: api.url,
      OTTER_TOKEN: TOKEN,
    };
    try {
      const { stdout, stderr } = await execFileAsync(otterLink, args, { env, cwd: work, timeout: 20_000 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const failed = e as { code?: number; stdout: string; stderr: string };
      if (typeof failed.code !== 'number') throw e;
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it('pushes and lists through the symlinked wrapper, then exits; failures exit 1 with error: on stderr', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const image = join(work, 'e2e.img');
    writeFileSync(image, data);
    const push = await otterBin(['release', 'push', '--hardware', 'e2e', '--version', '3.0.0', image]);
    expect(push).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(push.stdout)).toMatchObject({
      hardwareId: 'e2e',
      sha256: createHash('sha256').update(data).digest('hex'),
    });

    const list = await otterBin(['release', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^HARDWARE\s+VERSION\s+SHA256\s+SIZE\s+CREATED\ne2e\s+3\.0\.0\s/);

    const again = await otterBin(['release', 'push', '--hardware', 'e2e', '--version', '3.0.0', image]);
    expect(again).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: 409 RELEASE_DUPLICATE: release 3.0.0 for e2e already exists\n',
    });
  });
});
