import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildDelta } from '#otter/delta';
import type { DownloadReport } from '#otter/contracts';
import { installTarget, type InstallTargetOptions, type InstallTargetResult } from './install-target.js';
import { TestTufRepository } from './testing/test-tuf-repository.js';
import { TestTufServer } from './testing/test-tuf-server.js';

// installTarget against a plain TUF repository on disk: how the delta is found in the delegation tree, what
// is fetched, and the checks beyond what the api-backed system test (test/agent-install.e2e.spec.ts) covers.

const FROM = 'images/rpi4/1.0.0';
const TO = 'images/rpi4/2.0.0';
const DELTA = 'deltas/rpi4/1.0.0-2.0.0.delta';
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sha512 = (b: Buffer): string => createHash('sha512').update(b).digest('hex');

let fixtures: string;
let v1: Buffer;
let v2: Buffer;
let delta: Buffer;

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'otter-install-fixtures-'));
  v1 = randomBytes(64 * 4096);
  v2 = Buffer.from(v1);
  randomBytes(4096).copy(v2, 10 * 4096);
  v2 = Buffer.concat([v2, randomBytes(777)]);
  await writeFile(join(fixtures, 'v1'), v1);
  await writeFile(join(fixtures, 'v2'), v2);
  await buildDelta({
    sourceFile: join(fixtures, 'v1'),
    targetFile: join(fixtures, 'v2'),
    outFile: join(fixtures, 'delta'),
    memoryBudgetBytes: 64 * 1024 * 1024,
  });
  delta = await readFile(join(fixtures, 'delta'));
});
afterAll(() => rm(fixtures, { recursive: true, force: true }));

const custom = {
  delta: {
    format: 'otter-delta-v1',
    from: { version: '1.0.0', sha256: '', length: 0 },
    to: { version: '2.0.0', sha256: '', length: 0 },
  },
};

let workDir: string;
let server: TestTufServer | undefined;

beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'otter-install-'));
  await writeFile(join(workDir, 'current.img'), v1);
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(workDir, { recursive: true, force: true });
});

/** Otter's layout (images/* and deltas/* path-delegated, each to hash bins) or deltas without bins. */
async function serve(
  layout: 'bins' | 'paths',
  options: { image?: { signedHashes?: Record<string, string> } } = {},
): Promise<TestTufRepository> {
  const repo = new TestTufRepository(join(workDir, 'repo'), { hashAlgorithms: ['sha256', 'sha512'] });
  repo.delegatePaths('targets', [
    { name: 'images', paths: ['images/*/*'] },
    { name: 'deltas', paths: ['deltas/*/*'] },
  ]);
  if (layout === 'bins')
    repo.delegateHashBins('images', 'images-bin', 2).delegateHashBins('deltas', 'deltas-bin', 3);
  const c = structuredClone(custom);
  c.delta.from = { version: '1.0.0', sha256: sha256(v1), length: v1.length };
  c.delta.to = { version: '2.0.0', sha256: sha256(v2), length: v2.length };
  repo
    .addTarget(FROM, v1)
    .addTarget(TO, v2, options.image ?? {})
    .addTarget(DELTA, delta, { custom: c });
  await repo.publish();
  server = await TestTufServer.start(repo.dir);
  return repo;
}

function install(
  repo: TestTufRepository,
  overrides: Partial<InstallTargetOptions> = {},
): Promise<InstallTargetResult> {
  return installTarget({
    serverUrl: server!.url,
    trustedRootPath: repo.trustedRootPath,
    targetPath: TO,
    currentFile: join(workDir, 'current.img'),
    outFile: join(workDir, 'out', 'next.img'),
    stateDir: join(workDir, 'state'),
    ...overrides,
  });
}

describe('installTarget', () => {
  it('finds the delta in hash bins through tuf-js, checks the signed sha512, and fetches each bin once', async () => {
    const repo = await serve('bins');
    const result = await install(repo);
    expect(result).toMatchObject({ method: 'delta', bytesDownloaded: delta.length, delta: DELTA });
    expect((await readFile(join(workDir, 'out', 'next.img'))).equals(v2)).toBe(true);
    const bins = (): string[] => server!.requests.map((r) => r.path).filter((p) => p.includes('deltas-bin-'));
    // All 8 bins once: the delta's path names a version the node does not know, so the family is scanned.
    expect(new Set(bins()).size).toBe(8);
    expect(bins()).toHaveLength(8);

    // The next install on the same state dir finds the bins in tuf-js's cache, re-verified, not re-fetched.
    server!.requests.length = 0;
    const again = await install(repo, { outFile: join(workDir, 'out', 'other.img') });
    expect(again.method).toBe('delta');
    expect(bins()).toEqual([]);
    expect(server!.targetRequests.map((r) => r.path)).toEqual([repo.targetUrlPath(DELTA)]);
  });

  it('scans a deltas role that is path-delegated without bins', async () => {
    const repo = await serve('paths');
    const result = await install(repo);
    expect(result).toMatchObject({ method: 'delta', bytesDownloaded: delta.length });
    expect((await readFile(join(workDir, 'out', 'next.img'))).equals(v2)).toBe(true);
  });

  it('falls back when the delta download stalls, counts what it carried, and drops the partial delta', async () => {
    const repo = await serve('bins');
    const half = delta.length >> 1;
    server!.intercept = (_req, res, path) => {
      if (path !== repo.targetUrlPath(DELTA)) return false;
      res.writeHead(200, { 'Content-Length': delta.length });
      res.write(delta.subarray(0, half)); // ...and never the rest
      return true;
    };
    const reports: DownloadReport[] = [];
    const result = await install(repo, {
      fetcher: { idleTimeoutMs: 300 },
      reportDownload: async (report) => {
        reports.push(report);
      },
    });
    expect(result).toMatchObject({
      method: 'full',
      bytesDownloaded: half + v2.length,
      sourceBytesDownloaded: v2.length,
    });
    // Otter hears the image's bytes only (it refuses more than the full image): the wasted half is local.
    expect(reports).toEqual([
      { targetPath: TO, method: 'full', bytesDownloaded: v2.length, fullBytes: v2.length },
    ]);
    expect(result.fallbackReason).toMatch(
      /^delta deltas\/rpi4\/1\.0\.0-2\.0\.0\.delta: TARGET_DOWNLOAD_FAILED: .*300 ms/,
    );
    expect((await readFile(join(workDir, 'out', 'next.img'))).equals(v2)).toBe(true);
    expect(await readdir(join(workDir, 'state', 'downloads'))).toEqual([]);
  });

  it('refuses a delta result whose sha256 matches but whose signed sha512 does not, leaving the slot as it was', async () => {
    // The image target signs v2's sha256 with another image's sha512: no bytes can satisfy both.
    const repo = await serve('bins', {
      image: { signedHashes: { sha256: sha256(v2), sha512: sha512(v1) } },
    });
    await rm(join(workDir, 'out'), { recursive: true, force: true });
    const error = await install(repo).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(
      /sha512 differs from the signed one.*after falling back from a delta: delta .*TARGET_VERIFICATION_FAILED: .* does not hold the signed image \(sha256, sha512/,
    );
    expect(existsSync(join(workDir, 'out', 'next.img'))).toBe(false);
    expect(existsSync(join(workDir, 'out')) ? await readdir(join(workDir, 'out')) : []).toEqual([]);
  });
});
