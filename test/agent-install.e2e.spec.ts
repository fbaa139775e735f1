import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeltaTargetCustom, DownloadReport } from '#otter/contracts';
import {
  buildDelta,
  decodeHeader,
  decodeOperation,
  DELTA_FORMAT_VERSION,
  DELTA_HEADER_BYTES,
  OP_COPY,
} from '#otter/delta';
import { installTarget, type InstallTargetOptions, type InstallTargetResult } from '#otter/tuf-client';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { runBuiltAgent } from '../apps/agent/src/testing/agent-command.js';

// `otter-agent install` against the real api: deltas built with libs/delta, published as signed TUF targets
// with the contract's custom metadata, found by the agent from the sha256 of its current slot, downloaded
// (resumable, verified) and applied; every way the delta path can fail falls back to the full image.
//
// The command-line run uses <OTTER_TEST_DIST_ROOT>/dist (default: this repository, which `make test` builds
// first); see test/agent-cli.e2e.spec.ts for running it against a scratch build.

const BLOCK = 4096;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A 3 MiB "release 1" and a "release 2" with edited, replaced and moved blocks and an unaligned tail. */
function generateImages(): { v1: Buffer; v2: Buffer } {
  const blocks = 768;
  const v1 = randomBytes(blocks * BLOCK);
  for (let b = 0; b < blocks; b += 8) v1.fill(0, b * BLOCK, (b + 1) * BLOCK);
  const v2 = Buffer.from(v1);
  for (let b = 20; b < 24; b++) for (let i = 17; i < BLOCK; i += 700) v2[b * BLOCK + i] ^= 0x5a;
  randomBytes(BLOCK).copy(v2, 41 * BLOCK);
  v1.copy(v2, 61 * BLOCK, 121 * BLOCK, 122 * BLOCK);
  return { v1, v2: Buffer.concat([v2, randomBytes(5000)]) };
}

const { v1, v2 } = generateImages();
/** An image no delta starts from, as long as v1. */
const other = randomBytes(v1.length);
const work = mkdtempSync(join(tmpdir(), 'otter-agent-install-'));
let api: ApiHarness;
let root: string;
let delta: Buffer;

const imageRef = (version: string, image: Buffer) => ({
  version,
  sha256: sha256(image),
  length: image.length,
});
const deltaCustom = (from = imageRef('1.0.0', v1), to = imageRef('2.0.0', v2)): DeltaTargetCustom => ({
  delta: { format: `otter-delta-v${DELTA_FORMAT_VERSION}`, from, to },
});
const deltaPath = (hw: string): string => `deltas/${hw}/1.0.0-2.0.0.delta`;

/** Publishes releases 1.0.0 and 2.0.0 of `hw`, and `patch` as the 1.0.0 → 2.0.0 delta unless it is null. */
async function publishPair(
  hw: string,
  patch: Buffer | null = delta,
  custom: DeltaTargetCustom = deltaCustom(),
): Promise<void> {
  await api.publish(`images/${hw}/1.0.0`, v1, { hardware: hw, version: '1.0.0' });
  await api.publish(`images/${hw}/2.0.0`, v2, { hardware: hw, version: '2.0.0' });
  if (patch) await api.publish(deltaPath(hw), patch, { ...custom });
  // The api caches the signed timestamp for a short while; nodes must see this publish at once.
  api.invalidateCaches();
}

interface Node {
  dir: string;
  state: string;
  current: string;
  out: string;
}

/** A node with `image` in its current slot and an old image in the inactive slot file. */
function node(image: Buffer = v1): Node {
  const dir = mkdtempSync(join(work, 'node-'));
  mkdirSync(join(dir, 'slots'));
  const current = join(dir, 'slots', 'slot-a.img');
  const out = join(dir, 'slots', 'slot-b.img');
  writeFileSync(current, image);
  writeFileSync(out, 'the old image in slot B');
  return { dir, state: join(dir, 'state'), current, out };
}

function install(
  n: Node,
  hw: string,
  overrides: Partial<InstallTargetOptions> = {},
): Promise<InstallTargetResult> {
  return installTarget({
    serverUrl: api.url,
    trustedRootPath: root,
    targetPath: `images/${hw}/2.0.0`,
    currentFile: n.current,
    outFile: n.out,
    stateDir: n.state,
    ...overrides,
  });
}

/** The slot holds exactly release 2, the current slot is untouched, and nothing else was left behind. */
function expectInstalled(n: Node, image: Buffer = v1): void {
  expect(readFileSync(n.out).equals(v2)).toBe(true);
  expect(readFileSync(n.current).equals(image)).toBe(true);
  expect(readdirSync(join(n.dir, 'slots')).sort()).toEqual(['slot-a.img', 'slot-b.img']);
  expect(readdirSync(join(n.state, 'downloads'))).toEqual([]);
}

/** The delta's first COPY operation reads one block further on: a well-formed patch, a wrong result. */
function retargetFirstCopy(patch: Buffer): Buffer {
  const sizes: Record<number, number> = { 1: 32, 2: 24, 3: 48, 4: 32 }; // docs/delta-format.md
  const header = decodeHeader(patch.subarray(0, DELTA_HEADER_BYTES));
  let at = DELTA_HEADER_BYTES;
  for (let i = 0; i < header.operationCount; i++) {
    const op = decodeOperation(patch.subarray(at, at + sizes[patch[at]!]!));
    if (op.type === OP_COPY) {
      const moved = op.srcOffset + BLOCK + op.length <= header.source.length ? op.srcOffset + BLOCK : 0;
      const copy = Buffer.from(patch);
      copy.writeBigUInt64BE(BigInt(moved), at + 24);
      return copy;
    }
    at += sizes[op.type]! + ('payloadLength' in op ? op.payloadLength : 0);
  }
  throw new Error('the delta has no COPY operation');
}

beforeAll(async () => {
  const v1File = join(work, 'v1.img');
  const v2File = join(work, 'v2.img');
  writeFileSync(v1File, v1);
  writeFileSync(v2File, v2);
  const built = await buildDelta({
    sourceFile: v1File,
    targetFile: v2File,
    outFile: join(work, 'v1-v2.delta'),
    memoryBudgetBytes: 64 * 1024 * 1024,
  });
  expect(built.operations.copy).toBeGreaterThan(0);
  delta = readFileSync(join(work, 'v1-v2.delta'));
  api = await startApi();
  root = join(work, 'root.json');
  writeFileSync(root, await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text());
});

afterAll(async () => {
  await api?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('otter-agent install', () => {
  it('installs by delta: downloads only the patch and writes the exact image, reported once verified', async () => {
    await publishPair('rpi-delta');
    const n = node();
    const reports: DownloadReport[] = [];
    const phases = new Set<string>();
    const result = await install(n, 'rpi-delta', {
      onProgress: ({ phase }) => {
        phases.add(phase);
        // Until the result verified, the slot file still holds the old image (the new one is a temporary).
        expect(readFileSync(n.out, 'utf8')).toBe('the old image in slot B');
      },
      reportDownload: async (report) => {
        expect(readFileSync(n.out).equals(v2)).toBe(true);
        reports.push(report);
      },
    });

    expect(result).toMatchObject({
      method: 'delta',
      target: 'images/rpi-delta/2.0.0',
      sha256: sha256(v2),
      fullBytes: v2.length,
      bytesDownloaded: delta.length,
      resumedFrom: 0,
      delta: deltaPath('rpi-delta'),
    });
    expect(result.fallbackReason).toBeUndefined();
    expect(delta.length).toBeLessThan(v2.length / 10);
    expect([...phases]).toEqual(['delta-download', 'delta-apply']);
    expect(reports).toEqual([
      {
        targetPath: deltaPath('rpi-delta'),
        method: 'delta',
        bytesDownloaded: delta.length,
        fullBytes: v2.length,
      },
    ]);
    expectInstalled(n);
  });

  it('falls back to the full image when a validly signed patch produces the wrong bytes', async () => {
    // Signed over the corrupted bytes: tuf-js accepts the download, only the result hash can catch it.
    await publishPair('rpi-corrupt', retargetFirstCopy(delta));
    const n = node();
    const result = await install(n, 'rpi-corrupt', {
      onProgress: ({ phase }) => {
        if (phase !== 'full-download') expect(readFileSync(n.out, 'utf8')).toBe('the old image in slot B');
      },
    });
    expect(result).toMatchObject({
      method: 'full',
      sha256: sha256(v2),
      bytesDownloaded: delta.length + v2.length,
      delta: deltaPath('rpi-corrupt'),
    });
    expect(result.fallbackReason).toMatch(
      /DELTA_TARGET_MISMATCH: the result does not match the expected target/,
    );
    expectInstalled(n);

    // Bytes flipped anywhere in a validly signed patch: refused one way or another, never installed.
    const flipped = Buffer.from(delta);
    for (let i = DELTA_HEADER_BYTES + 7; i < flipped.length; i += 997) flipped[i] ^= 0xff;
    await publishPair('rpi-flipped', flipped);
    const n2 = node();
    const second = await install(n2, 'rpi-flipped');
    expect(second.method).toBe('full');
    expect(second.fallbackReason).toMatch(/^delta deltas\/rpi-flipped\/1\.0\.0-2\.0\.0\.delta: DELTA_/);
    expectInstalled(n2);
  });

  it('falls back to the full image when no delta is published; a failing report does not fail the install', async () => {
    await publishPair('rpi-nodelta', null);
    const n = node();
    const result = await install(n, 'rpi-nodelta', {
      reportDownload: () => Promise.reject(new Error('api down')),
    });
    expect(result).toMatchObject({ method: 'full', bytesDownloaded: v2.length, fullBytes: v2.length });
    expect(result.delta).toBeUndefined();
    expect(result.fallbackReason).toMatch(/no published delta to images\/rpi-nodelta\/2\.0\.0/);
    expect(result.reportError).toBe('api down');
    expectInstalled(n);
  });

  it('falls back when the current slot is not the delta source: none found, or refused when metadata claims so', async () => {
    await publishPair('rpi-other');
    const n = node(other);
    const result = await install(n, 'rpi-other');
    expect(result).toMatchObject({ method: 'full', bytesDownloaded: v2.length });
    expect(result.fallbackReason).toMatch(/starts from the current slot's image \(deltas from: 1\.0\.0\)/);
    expectInstalled(n, other);

    // The signed custom metadata says the delta starts from `other`, but its bytes patch release 1: the
    // applier checks the slot against the delta's own source before writing anything.
    await publishPair('rpi-liar', delta, deltaCustom(imageRef('0.9.0', other)));
    const n2 = node(other);
    const second = await install(n2, 'rpi-liar');
    expect(second).toMatchObject({ method: 'full', bytesDownloaded: delta.length + v2.length });
    expect(second.fallbackReason).toMatch(/DELTA_SOURCE_MISMATCH: the current image is not the delta source/);
    expectInstalled(n2, other);
  });

  it('falls back when the served patch differs from its signed metadata (tuf-js info refuses it)', async () => {
    await publishPair('rpi-tampered');
    const tampered = Buffer.from(delta);
    tampered[tampered.length >> 1] ^= 0x01;
    await api.blobs.put(`test/${deltaPath('rpi-tampered')}`, Readable.from([tampered]));
    const n = node();
    const result = await install(n, 'rpi-tampered');
    expect(result.method).toBe('full');
    expect(result.fallbackReason).toMatch(
      /TARGET_VERIFICATION_FAILED: target "deltas\/rpi-tampered\/1\.0\.0-2\.0\.0\.delta" does not match its signed metadata \(sha256/,
    );
    expectInstalled(n);
  });

  it('refuses hostile patches (garbage, a header claiming a larger image) without crashing or writing', async () => {
    const bigger = Buffer.from(delta);
    bigger.writeBigUInt64BE(BigInt(v2.length * 1000), 56); // header: target.length
    for (const [hw, patch] of [
      ['rpi-garbage', randomBytes(50_000)],
      ['rpi-bigger', bigger],
    ] as const) {
      await publishPair(hw, patch);
      const n = node();
      const result = await install(n, hw, {
        onProgress: ({ phase }) => {
          if (phase !== 'full-download') expect(readFileSync(n.out, 'utf8')).toBe('the old image in slot B');
        },
      });
      expect(result.method).toBe('full');
      expect(result.fallbackReason).toMatch(/DELTA_MALFORMED|DELTA_TARGET_MISMATCH/);
      expectInstalled(n);
    }
  });

  it('resumes an interrupted delta download', async () => {
    await publishPair('rpi-resume');
    const n = node();
    const half = delta.length >> 1;
    mkdirSync(join(n.state, 'downloads'), { recursive: true });
    writeFileSync(join(n.state, 'downloads', `${sha256(delta)}.part`), delta.subarray(0, half));
    const result = await install(n, 'rpi-resume');
    expect(result).toMatchObject({
      method: 'delta',
      resumedFrom: half,
      bytesDownloaded: delta.length - half,
    });
    expectInstalled(n);
  });

  it('refuses to write into the current slot', async () => {
    await publishPair('rpi-same');
    const n = node();
    await expect(install(n, 'rpi-same', { outFile: n.current })).rejects.toThrow(/is the current slot/);
    expect(readFileSync(n.current).equals(v1)).toBe(true);
  });

  it.skipIf(!loopDevicesAvailable())(
    'installs into block devices: reads exactly the source length, writes in place',
    async () => {
      await publishPair('rpi-blockdev');
      await publishPair('rpi-blockdev-full', null);
      const slotSize = 4 * 1024 * 1024; // larger than either image
      const dir = mkdtempSync(join(work, 'loop-'));
      const [a, b] = ['a', 'b'].map((name) => {
        const file = join(dir, `${name}.img`);
        const bytes = randomBytes(slotSize);
        if (name === 'a') v1.copy(bytes);
        writeFileSync(file, bytes);
        return execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8' }).trim();
      });
      try {
        const n = { dir, state: join(dir, 'state'), current: a!, out: b! };
        const byDelta = await install(n, 'rpi-blockdev');
        expect(byDelta).toMatchObject({ method: 'delta', bytesDownloaded: delta.length });
        expect(readDevice(b!, v2.length).equals(v2)).toBe(true);

        const n2 = { ...n, state: join(dir, 'state2') };
        const full = await install(n2, 'rpi-blockdev-full');
        expect(full).toMatchObject({ method: 'full', bytesDownloaded: v2.length });
        expect(readDevice(b!, v2.length).equals(v2)).toBe(true);
        expect(readDevice(a!, v1.length).equals(v1)).toBe(true);
      } finally {
        for (const device of [a, b]) if (device) execFileSync('losetup', ['-d', device]);
      }
    },
  );

  it('runs as `otter-agent install` and prints one JSON line', async () => {
    await publishPair('rpi-cli');
    const n = node();
    const { code, stdout, stderr } = await runBuiltAgent(
      [
        'install',
        ...['--server', api.url, '--root', root, '--target', 'images/rpi-cli/2.0.0'],
        ...['--current', n.current, '--out', n.out, '--state-dir', n.state],
      ],
      n.dir,
    );
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      method: 'delta',
      bytesDownloaded: delta.length,
      fullBytes: v2.length,
      target: 'images/rpi-cli/2.0.0',
      sha256: sha256(v2),
    });
    expectInstalled(n);
  });
});

function loopDevicesAvailable(): boolean {
  if (process.getuid?.() !== 0 || !existsSync('/dev/loop-control')) return false;
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function readDevice(path: string, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buffer, done, length - done, done);
      if (n === 0) break;
      done += n;
    }
    return buffer.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}
