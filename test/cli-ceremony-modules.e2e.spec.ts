// The offline root ceremony runs on an air-gapped machine with the root keys: the built `otter tuf ...`
// commands must load the TUF signing layer and nothing of the server (no NestJS, no database driver).
// Each command runs as its own process under a module-load tracer; the tracer itself is checked first.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Ed25519Signer } from '#otter/tuf-signing';

// Runs <OTTER_TEST_DIST_ROOT>/dist (default: this repository, which `make test` builds first), as
// test/agent-cli.e2e.spec.ts does.
const distRoot = process.env.OTTER_TEST_DIST_ROOT ?? fileURLToPath(new URL('..', import.meta.url));
const cliMain = join(distRoot, 'dist/apps/cli/src/main.js');
const tracer = fileURLToPath(new URL('./module-load-tracer.mjs', import.meta.url));

/** Server-side packages: NestJS, Kysely and the SQLite and PostgreSQL drivers. */
const FORBIDDEN = /\/node_modules\/(@nestjs\/[^/]+|kysely|better-sqlite3|pg|pg-[a-z-]+)\//;

interface TracedRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Every module URL the process loaded. */
  modules: string[];
}

const work = mkdtempSync(join(tmpdir(), 'otter-ceremony-modules-'));
let runs = 0;

function traced(args: string[]): Promise<TracedRun> {
  const traceFile = join(work, `trace-${++runs}.txt`);
  writeFileSync(traceFile, '');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', tracer, ...args],
      {
        cwd: work,
        timeout: 25_000,
        // fetch refuses port 9 outright: a command that asks the server fails at once, after loading its code.
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          OTTER_MODULE_TRACE: traceFile,
          OTTER_SERVER: 'http://127.0.0.1:9',
          OTTER_TOKEN: 'otr_unused',
        },
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        const modules = readFileSync(traceFile, 'utf8').split('\n').filter(Boolean);
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr, modules });
      },
    );
  });
}

function otter(...args: string[]): Promise<TracedRun> {
  return traced([cliMain, ...args]);
}

/** What the run loaded of the server: forbidden packages, and the libs that carry Nest or the database. */
function serverModules(run: TracedRun): string[] {
  return run.modules.filter((url) => FORBIDDEN.test(url) || /\/dist\/libs\/(tuf|director|db)\//.test(url));
}

function expectCeremonyOnly(run: TracedRun, code = 0): void {
  expect(run.code, run.stderr).toBe(code);
  expect(serverModules(run)).toEqual([]);
  // The tracer saw the command's own code, so an empty list above means something.
  expect(run.modules).toContainEqual(expect.stringMatching(/\/dist\/libs\/tuf-signing\/src\/index\.js$/));
}

beforeAll(() => {
  if (!existsSync(cliMain)) {
    throw new Error(
      `${cliMain} not found: build first (make build), or set OTTER_TEST_DIST_ROOT to a directory with a built dist/`,
    );
  }
});

describe('otter tuf: the root ceremony loads neither NestJS nor a database driver', () => {
  it('the tracer sees NestJS, Kysely and both database drivers when the image repository lib is loaded', async () => {
    const imageRepositoryLib = join(distRoot, 'dist/libs/tuf/src/index.js');
    const run = await traced([
      '--input-type=module',
      '-e',
      `await import(${JSON.stringify(imageRepositoryLib)});`,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const packages = new Set(run.modules.map((url) => FORBIDDEN.exec(url)?.[1]).filter(Boolean));
    for (const p of ['@nestjs/common', 'kysely', 'better-sqlite3', 'pg'])
      expect(packages.has(p), p).toBe(true);
  });

  it('keygen, root create, sign and verify (offline), and publish, each in its own process', async () => {
    expectCeremonyOnly(await otter('tuf', 'keygen', '--out', 'officer-a.pem'));
    expectCeremonyOnly(await otter('tuf', 'keygen', '--out', 'officer-b.pem'));
    // What `otter tuf online-keys --json` saved on the online side, carried over to the offline machine.
    const onlineKey = () => [Ed25519Signer.generate().tufKey];
    writeFileSync(
      join(work, 'online-keys.json'),
      JSON.stringify({ next: { targets: onlineKey(), snapshot: onlineKey(), timestamp: onlineKey() } }),
    );
    expectCeremonyOnly(
      await otter(
        'tuf',
        'root',
        'create',
        '--first',
        '--root-key',
        'officer-a.pem.pub.json',
        '--root-key',
        'officer-b.pem.pub.json',
        '--threshold',
        '2',
        '--online-keys',
        'online-keys.json',
        '--out',
        'root.json',
      ),
    );
    const unsigned = await otter('tuf', 'root', 'verify', 'root.json');
    expectCeremonyOnly(unsigned, 1);
    expect(unsigned.stdout).toContain('signed by 0 of its own root keys, needs 2');
    expectCeremonyOnly(await otter('tuf', 'root', 'sign', 'root.json', '--key', 'officer-a.pem'));
    expectCeremonyOnly(await otter('tuf', 'root', 'sign', 'root.json', '--key', 'officer-b.pem'));
    const verified = await otter('tuf', 'root', 'verify', 'root.json');
    expectCeremonyOnly(verified);
    expect(verified.stdout).toContain('ok: acceptable to the server and to clients');

    // The online end of the ceremony talks to the api over HTTP only: no server code either.
    const publish = await otter('tuf', 'root', 'publish', 'root.json');
    expectCeremonyOnly(publish, 1);
    expect(publish.stderr).toMatch(/^error: /);
  });
});
