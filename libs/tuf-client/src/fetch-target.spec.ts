import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fetchTarget, type FetchTargetOptions, type FetchTargetResult } from './fetch-target.js';
import { TestTufRepository } from './testing/test-tuf-repository.js';
import { TestTufServer } from './testing/test-tuf-server.js';
import { TufClientError, type TufClientErrorCode } from './tuf-client-error.js';

const IMAGE = 'images/rpi4/os-2.4.0.img';
const DELTA = 'deltas/rpi4/2.3.0-2.4.0.delta';

// A second filesystem (tmpfs) to prove the cross-device path, where rename() fails with EXDEV.
const otherFilesystem =
  existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync(tmpdir()).dev ? '/dev/shm' : undefined;

let workDir: string;
let repo: TestTufRepository;
let server: TestTufServer;
let stateDir: string;
let outFile: string;
let image: Buffer;
let delta: Buffer;

beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'otter-tuf-client-'));
  image = randomBytes(300_000);
  delta = randomBytes(20_000);
  // images/* go through a path delegation and then succinct hash bins; deltas stay in top-level targets.
  repo = new TestTufRepository(join(workDir, 'repo'), { hashAlgorithms: ['sha256', 'sha512'] })
    .delegatePaths('targets', [{ name: 'images', paths: ['images/*/*'] }])
    .delegateHashBins('images', 'images-bin', 2)
    .addTarget(IMAGE, image)
    .addTarget(DELTA, delta);
  await repo.publish();
  server = await TestTufServer.start(repo.dir);
  stateDir = join(workDir, 'state');
  outFile = join(workDir, 'out', 'os.img');
});

afterEach(async () => {
  await server.close();
  await rm(workDir, { recursive: true, force: true });
});

function fetchImage(overrides: Partial<FetchTargetOptions> = {}): Promise<FetchTargetResult> {
  return fetchTarget({
    serverUrl: server.url,
    trustedRootPath: repo.trustedRootPath,
    targetPath: IMAGE,
    outFile,
    stateDir,
    ...overrides,
  });
}

async function expectFailure(
  promise: Promise<unknown>,
  code: TufClientErrorCode,
  message: RegExp,
): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TufClientError);
  expect((error as TufClientError).code).toBe(code);
  expect((error as TufClientError).message).toMatch(message);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const partFile = (content: Buffer): string => join(stateDir, 'downloads', `${sha256(content)}.part`);

async function writePart(content: Buffer, bytes: Buffer): Promise<void> {
  await mkdir(join(stateDir, 'downloads'), { recursive: true });
  await writeFile(partFile(content), bytes);
}

async function downloadsLeft(): Promise<string[]> {
  return existsSync(join(stateDir, 'downloads')) ? readdir(join(stateDir, 'downloads')) : [];
}

describe('fetchTarget', () => {
  it('downloads delegated and top-level targets to the exact signed bytes at hash-prefixed URLs', async () => {
    const result = await fetchImage();
    expect(result).toEqual({
      path: outFile,
      length: image.length,
      sha256: sha256(image),
      resumedFrom: 0,
      bytesDownloaded: image.length,
    });
    expect((await readFile(outFile)).equals(image)).toBe(true);
    expect(server.targetRequests).toEqual([
      { method: 'GET', path: `/targets/images/rpi4/${sha256(image)}.os-2.4.0.img`, range: undefined },
    ]);
    // The delegation chain was walked: targets -> images -> one hash bin.
    const fetched = server.requests.map((r) => r.path);
    expect(fetched).toContain('/metadata/1.images.json');
    expect(fetched).toContain(`/metadata/1.${repo.roleFor(IMAGE)}.json`);
    expect(await downloadsLeft()).toEqual([]);
    expect(await readdir(join(workDir, 'out'))).toEqual(['os.img']);

    // A second call on the same state dir builds a fresh Updater and trusts the root cached there (the
    // configured root only seeds an empty state dir).
    const deltaOut = join(workDir, 'out', 'delta.bin');
    const second = await fetchTarget({
      serverUrl: `${server.url}/`,
      trustedRootPath: join(workDir, 'no-such-root.json'),
      targetPath: DELTA,
      outFile: deltaOut,
      stateDir,
    });
    expect(second.sha256).toBe(sha256(delta));
    expect((await readFile(deltaOut)).equals(delta)).toBe(true);
  });

  it.skipIf(otherFilesystem === undefined)(
    'moves the file to another filesystem through a temporary copy next to the output',
    async () => {
      const outDir = await mkdtemp(join(otherFilesystem!, 'otter-tuf-client-'));
      try {
        await fetchImage({ outFile: join(outDir, 'os.img') });
        expect((await readFile(join(outDir, 'os.img'))).equals(image)).toBe(true);
        expect(await readdir(outDir)).toEqual(['os.img']);
        expect(await downloadsLeft()).toEqual([]);
      } finally {
        await rm(outDir, { recursive: true, force: true });
      }
    },
  );

  it('resumes a partial download with a Range request', async () => {
    const have = 123_457;
    await writePart(image, image.subarray(0, have));
    const progress: number[] = [];

    const result = await fetchImage({ onProgress: ({ received }) => progress.push(received) });

    expect(result.resumedFrom).toBe(have);
    expect(result.bytesDownloaded).toBe(image.length - have);
    expect(server.targetRequests.map((r) => r.range)).toEqual([`bytes=${have}-`]);
    expect((await readFile(outFile)).equals(image)).toBe(true);
    expect(progress[0]).toBeGreaterThan(have);
    expect(progress.at(-1)).toBe(image.length);
    expect(await downloadsLeft()).toEqual([]);
  });

  it('starts over when the server ignores Range and answers 200', async () => {
    await writePart(image, image.subarray(0, 50_000));
    server.ignoreRange = true;

    const result = await fetchImage();

    expect(server.targetRequests.map((r) => r.range)).toEqual(['bytes=50000-']);
    expect(result).toMatchObject({ resumedFrom: 0, bytesDownloaded: image.length });
    expect((await readFile(outFile)).equals(image)).toBe(true);
  });

  it('starts over after a 416', async () => {
    await writePart(image, image.subarray(0, 50_000));
    server.intercept = (req, res) => {
      if (!req.headers.range) return false;
      res.writeHead(416, { 'Content-Range': `bytes */${image.length}` }).end();
      return true;
    };

    const result = await fetchImage();

    expect(server.targetRequests.map((r) => r.range)).toEqual(['bytes=50000-', undefined]);
    expect(result).toMatchObject({ resumedFrom: 0, bytesDownloaded: image.length });
    expect((await readFile(outFile)).equals(image)).toBe(true);
  });

  it('does not splice a 206 whose Content-Range is not the range asked for', async () => {
    await writePart(image, image.subarray(0, 50_000));
    server.intercept = (req, res, path) => {
      if (!req.headers.range || !path.startsWith('/targets/')) return false;
      // A server that answers a different range than requested: appending it would duplicate bytes.
      res.writeHead(206, { 'Content-Range': `bytes 0-${image.length - 1}/${image.length}` }).end(image);
      return true;
    };

    const result = await fetchImage();

    expect(server.targetRequests.map((r) => r.range)).toEqual(['bytes=50000-', undefined]);
    expect(result).toMatchObject({ resumedFrom: 0, bytesDownloaded: image.length });
    expect((await readFile(outFile)).equals(image)).toBe(true);
  });

  it('finishes from a complete partial file left by an interrupted run without downloading', async () => {
    await writePart(image, image);
    const result = await fetchImage();
    expect(server.targetRequests).toEqual([]);
    expect(result).toMatchObject({ resumedFrom: image.length, bytesDownloaded: 0 });
    expect((await readFile(outFile)).equals(image)).toBe(true);
  });

  it('keeps the partial file after a stalled connection and resumes from it next time', async () => {
    const half = 150_000;
    server.intercept = (_req, res, path) => {
      if (!path.startsWith('/targets/')) return false;
      res.writeHead(200, { 'Content-Length': image.length });
      res.write(image.subarray(0, half)); // ...and never the rest
      return true;
    };
    await expectFailure(
      fetchImage({ fetcher: { idleTimeoutMs: 300 } }),
      'TARGET_DOWNLOAD_FAILED',
      /no data from .* for 300 ms/,
    );
    expect((await stat(partFile(image))).size).toBe(half);
    expect(existsSync(outFile)).toBe(false);

    server.intercept = undefined;
    const result = await fetchImage();
    expect(server.targetRequests.at(-1)?.range).toBe(`bytes=${half}-`);
    expect(result).toMatchObject({ resumedFrom: half, bytesDownloaded: image.length - half });
    expect((await readFile(outFile)).equals(image)).toBe(true);
  });

  it('keeps the partial file when the target answers an HTTP error', async () => {
    await writePart(image, image.subarray(0, 1000));
    await rm(repo.targetFile(IMAGE));
    await expectFailure(fetchImage(), 'TARGET_DOWNLOAD_FAILED', /HTTP 404/);
    expect((await stat(partFile(image))).size).toBe(1000);
    expect(existsSync(outFile)).toBe(false);
  });

  it('rejects served bytes that differ from the signed hash and keeps nothing', async () => {
    const tampered = Buffer.from(image);
    tampered[1234] = tampered[1234]! ^ 0xff;
    await writeFile(repo.targetFile(IMAGE), tampered);

    await expectFailure(
      fetchImage(),
      'TARGET_VERIFICATION_FAILED',
      /does not match its signed metadata.*sha256/,
    );
    expect(existsSync(outFile)).toBe(false);
    expect(await downloadsLeft()).toEqual([]);
  });

  it('rejects a resumed download whose earlier bytes were corrupt, then recovers from scratch', async () => {
    await writePart(image, randomBytes(100_000));
    await expectFailure(fetchImage(), 'TARGET_VERIFICATION_FAILED', /sha256/);
    expect(existsSync(outFile)).toBe(false);
    expect(await downloadsLeft()).toEqual([]);

    const result = await fetchImage();
    expect(result).toMatchObject({ resumedFrom: 0, bytesDownloaded: image.length });
    expect((await readFile(outFile)).equals(image)).toBe(true);
  });

  it('checks the signed sha512 too, not only sha256', async () => {
    const target = 'deltas/rpi4/sha512-mismatch.delta';
    const content = randomBytes(10_000);
    // Correct sha256, but the signed sha512 is of other bytes.
    const sha512OfOther = createHash('sha512').update(randomBytes(10)).digest('hex');
    repo.addTarget(target, content, { signedHashes: { sha256: sha256(content), sha512: sha512OfOther } });
    await repo.publish();

    await expectFailure(fetchImage({ targetPath: target }), 'TARGET_VERIFICATION_FAILED', /sha512/);
    expect(existsSync(outFile)).toBe(false);
    expect(await downloadsLeft()).toEqual([]);
  });

  it('cuts off a server that streams more than the signed length', async () => {
    server.intercept = (_req, res, path) => {
      if (!path.startsWith('/targets/')) return false;
      // No Content-Length (chunked): the overflow is only seen while streaming.
      res.writeHead(200);
      res.write(image);
      res.end(randomBytes(64_000));
      return true;
    };
    await expectFailure(fetchImage(), 'TARGET_VERIFICATION_FAILED', /more than the signed length/);
    expect(existsSync(outFile)).toBe(false);
    expect(await downloadsLeft()).toEqual([]);
  });

  it('refuses a body announced longer than the signed length before writing it', async () => {
    server.intercept = (_req, res, path) => {
      if (!path.startsWith('/targets/')) return false;
      res.writeHead(200, { 'Content-Length': image.length + 1 });
      res.end(Buffer.concat([image, Buffer.from('x')]));
      return true;
    };
    await expectFailure(fetchImage(), 'TARGET_VERIFICATION_FAILED', /announced 300001 bytes/);
    expect(existsSync(outFile)).toBe(false);
    expect(await downloadsLeft()).toEqual([]);
  });

  it('names a target that is not in the signed metadata', async () => {
    await expectFailure(
      fetchImage({ targetPath: 'images/rpi4/os-9.9.9.img' }),
      'TARGET_NOT_FOUND',
      /target "images\/rpi4\/os-9\.9\.9\.img" is not in the signed metadata/,
    );
    expect(server.targetRequests).toEqual([]);
    expect(existsSync(outFile)).toBe(false);
  });

  it('rejects a targets.json whose signature no longer matches and writes nothing', async () => {
    // An attacker points the signed image entry at their own bytes, keeping the old signature.
    const evil = randomBytes(image.length);
    await writeFile(join(repo.targetsDir, 'images', 'rpi4', `${sha256(evil)}.os-2.4.0.img`), evil);
    const file = repo.metadataFile('1.targets.json');
    const md = JSON.parse(await readFile(file, 'utf8')) as {
      signed: { targets: Record<string, { length: number; hashes: Record<string, string> }> };
    };
    md.signed.targets[IMAGE] = { length: evil.length, hashes: { sha256: sha256(evil) } };
    await writeFile(file, JSON.stringify(md));

    await expectFailure(fetchImage(), 'METADATA_REFRESH_FAILED', /targets was signed by 0\/1 keys/);
    expect(server.targetRequests).toEqual([]);
    expect(existsSync(outFile)).toBe(false);
    expect(await downloadsLeft()).toEqual([]);
    // The rejected metadata is not cached either.
    expect(existsSync(join(stateDir, 'metadata', 'targets.json'))).toBe(false);
  });

  it('rejects a tampered delegated hash-bin role', async () => {
    const file = repo.metadataFile(`1.${repo.roleFor(IMAGE)}.json`);
    const md = JSON.parse(await readFile(file, 'utf8')) as {
      signed: { targets: Record<string, { length: number }> };
    };
    md.signed.targets[IMAGE]!.length += 1;
    await writeFile(file, JSON.stringify(md));

    await expectFailure(fetchImage(), 'METADATA_REFRESH_FAILED', /images-bin-[0-3] was signed by 0\/1 keys/);
    expect(server.targetRequests).toEqual([]);
    expect(existsSync(outFile)).toBe(false);
  });

  it('rejects a repository signed by keys the device does not trust', async () => {
    const other = new TestTufRepository(join(workDir, 'other'));
    await other.publish();
    await expectFailure(
      fetchImage({ trustedRootPath: other.trustedRootPath }),
      'METADATA_REFRESH_FAILED',
      /timestamp was signed by 0\/1 keys/,
    );
    expect(server.targetRequests).toEqual([]);
    expect(existsSync(outFile)).toBe(false);
  });

  it('fails clearly on a missing trusted root or a bad server URL', async () => {
    await expectFailure(
      fetchImage({ trustedRootPath: join(workDir, 'missing.json') }),
      'TRUSTED_ROOT_INVALID',
      /missing\.json/,
    );
    await expectFailure(fetchImage({ serverUrl: 'ftp://example' }), 'INVALID_ARGUMENT', /http or https/);
    expect(server.requests).toEqual([]);
  });
});
