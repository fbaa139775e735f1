import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDelta } from './apply.js';
import { buildDeltaV2, type BuildDeltaV2Options, type BuildDeltaV2Result } from './build-v2.js';
import { DELTA_HEADER_BYTES, DeltaError, decodeHeader } from './format.js';
import { decodeHeaderV2 } from './format-v2.js';
import { Covers, Matcher, SourceIndex } from './match.js';
import { randomBytesFrom, seededRandom, textFrom } from './testing.js';

// Round trips of the v2 builder and applier on generated pairs that defeat block matching: content moved by
// amounts that are not a multiple of any block size. Each result must be byte-identical and each patch under
// the bound its test states (derived from what really changed, not from what the builder happens to make).

const KiB = 1024;
const MiB = 1024 * KiB;

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'otter-delta-v2-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let pairs = 0;
async function roundTrip(
  source: Buffer,
  target: Buffer,
  options: Partial<BuildDeltaV2Options> = {},
): Promise<BuildDeltaV2Result> {
  const dir = join(root, `pair-${pairs++}`);
  const sourceFile = `${dir}-old`;
  const targetFile = `${dir}-new`;
  const outFile = `${dir}-patch`;
  writeFileSync(sourceFile, source);
  writeFileSync(targetFile, target);
  const built = await buildDeltaV2({ sourceFile, targetFile, outFile, ...options });
  const patch = readFileSync(outFile);
  expect(patch.length).toBe(built.patchLength);
  expect(decodeHeaderV2(patch.subarray(0, DELTA_HEADER_BYTES)).target).toEqual(built.target);
  const result = await applyDelta({
    sourceFile,
    delta: Readable.from([patch]),
    outFile: `${dir}-out`,
    expectedTarget: built.target,
  });
  expect(result.sha256).toBe(built.target.sha256);
  expect(readFileSync(`${dir}-out`).equals(target)).toBe(true);
  return built;
}

/** `source` with `insert` placed at each of `at` (offsets into the source, ascending). */
function withInsertions(source: Buffer, at: number[], insert: (i: number) => Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  at.forEach((offset, i) => {
    parts.push(source.subarray(from, offset), insert(i));
    from = offset;
  });
  parts.push(source.subarray(from));
  return Buffer.concat(parts);
}

/** A tar-like container: 512-byte headers naming each file, contents padded to 512 bytes. */
function container(files: { name: string; bytes: Buffer }[]): Buffer {
  return Buffer.concat(
    files.flatMap(({ name, bytes }) => {
      const header = Buffer.alloc(512);
      header.write(`${name}\0${bytes.length}`, 'latin1');
      return [header, bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)];
    }),
  );
}

describe('v2 matcher', () => {
  it('places cover boundaries where the data changed, at odd offsets, not on block boundaries', () => {
    const random = seededRandom(11);
    const source = randomBytesFrom(random, 256 * KiB);
    const target = withInsertions(source, [1001, 70_001], () => randomBytesFrom(random, 777));
    const covers = new Covers();
    new Matcher(new SourceIndex(source, 4)).match(target, 0, covers);
    const found = Array.from({ length: covers.count }, (_, c) => [
      covers.newStart[c],
      covers.oldStart[c],
      covers.length[c],
    ]);
    // The random insertions may by chance extend a cover by a byte or two; the copies are exactly these.
    expect(found).toHaveLength(3);
    expect(found[0]![0]).toBe(0);
    expect(found[0]![1]).toBe(0);
    expect(Math.abs(found[0]![2]! - 1001)).toBeLessThanOrEqual(2);
    expect(Math.abs(found[1]![0]! - (1001 + 777))).toBeLessThanOrEqual(2);
    expect(found[1]![0]! - found[1]![1]!).toBe(777);
    expect(found[2]![0]! - found[2]![1]!).toBe(2 * 777);
    expect(found[2]![0]! + found[2]![2]!).toBe(target.length);
  });
});

describe('buildDeltaV2 + applyDelta round trips', () => {
  it('content shifted by odd amounts (insertions and a deletion of 1, 777 and 333 bytes)', async () => {
    const random = seededRandom(1);
    const source = Buffer.concat([textFrom(random, 1 * MiB), randomBytesFrom(random, 1 * MiB)]);
    const shifted = withInsertions(source, [12_345, 400_001, 1_500_007], (i) =>
      randomBytesFrom(random, [1, 777, 3][i]!),
    );
    const target = Buffer.concat([shifted.subarray(0, 1_800_003), shifted.subarray(1_800_336)]);
    const built = await roundTrip(source, target);
    // 781 new random bytes, a handful of covers: well under 2 KiB, where 4 KiB blocks would miss everything.
    expect(built.patchLength).toBeLessThan(2 * KiB);
    expect(built.literalBytes).toBeLessThan(1000);
  });

  it('files moved inside a tar-like container, one edited and one added', async () => {
    const random = seededRandom(2);
    const files = Array.from({ length: 40 }, (_, i) => ({
      name: `usr/lib/file-${i}`,
      bytes: i % 3 === 0 ? randomBytesFrom(random, 5_000 + i * 997) : textFrom(random, 7_000 + i * 1_313),
    }));
    const edited = Buffer.from(files[7]!.bytes);
    for (let at = 100; at < edited.length; at += 700) edited[at] ^= 0x5a;
    const added = { name: 'usr/lib/new', bytes: randomBytesFrom(random, 20_000) };
    const moved = [...files.slice(20), added, ...files.slice(0, 20)].map((f, i) =>
      f === files[7] ? { name: f.name, bytes: edited } : { ...f, name: i % 2 ? f.name : `${f.name}.moved` },
    );
    const source = container(files);
    const target = container(moved);
    const built = await roundTrip(source, target);
    // The added file is incompressible (20 000 bytes); the moves and ~30 edited bytes cost little beyond it.
    expect(built.patchLength).toBeLessThan(20_000 + 3 * KiB);
  });

  it('a filesystem-like image whose 4 KiB blocks are reordered, with long zero runs', async () => {
    const random = seededRandom(3);
    const blocks = Array.from({ length: 768 }, (_, i) =>
      i % 4 === 3 ? Buffer.alloc(4 * KiB) : randomBytesFrom(random, 4 * KiB),
    );
    const order = blocks.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const source = Buffer.concat([...blocks, Buffer.alloc(2 * MiB)]);
    const target = Buffer.concat([Buffer.alloc(MiB + 3), ...order.map((i) => blocks[i]!), Buffer.alloc(5)]);
    const built = await roundTrip(source, target);
    // 768 blocks, each at most one cover of a few control bytes; every byte comes from the source.
    expect(built.patchLength).toBeLessThan(8 * KiB);
    expect(built.literalBytes).toBeLessThan(64);
  });

  it('long zero runs at different offsets and lengths (a case bsdiff is quadratic on)', async () => {
    const random = seededRandom(4);
    const source = Buffer.concat([randomBytesFrom(random, 64 * KiB), Buffer.alloc(3 * MiB)]);
    const target = Buffer.concat([
      Buffer.alloc(2 * MiB + 1),
      source.subarray(0, 64 * KiB),
      Buffer.alloc(MiB + 77),
    ]);
    const built = await roundTrip(source, target, { segmentBytes: MiB });
    expect(built.patchLength).toBeLessThan(2 * KiB);
  });

  it('a pair with nothing in common costs the target once, plus a small overhead', async () => {
    const random = seededRandom(5);
    const built = await roundTrip(randomBytesFrom(random, MiB), randomBytesFrom(random, MiB + 1));
    expect(built.covers).toBe(0);
    expect(built.patchLength).toBeLessThan(MiB + 1 + 2 * KiB);
  });

  it('identical images cost a few bytes per segment, whatever the segment size', async () => {
    const source = randomBytesFrom(seededRandom(6), 3 * MiB + 5);
    for (const segmentBytes of [64 * KiB, 8 * MiB]) {
      const built = await roundTrip(source, source, { segmentBytes });
      expect(built.literalBytes).toBe(0);
      // Per segment a header and two tiny frames; the all-zero diff stream costs a few bytes per 128 KiB
      // zstd block.
      expect(built.patchLength).toBeLessThan(
        DELTA_HEADER_BYTES + built.segments * 64 + source.length / 16384,
      );
    }
  });

  it('an empty source, and an empty target', async () => {
    const bytes = textFrom(seededRandom(7), 100 * KiB);
    const fromNothing = await roundTrip(Buffer.alloc(0), bytes);
    expect(fromNothing.covers).toBe(0);
    const toNothing = await roundTrip(bytes, Buffer.alloc(0));
    expect(toNothing.patchLength).toBe(DELTA_HEADER_BYTES);
  });

  it('refuses a memory budget that cannot hold the source and its index', async () => {
    const file = join(root, 'small-budget');
    writeFileSync(file, Buffer.alloc(MiB));
    const error = await buildDeltaV2({
      sourceFile: file,
      targetFile: file,
      outFile: `${file}.patch`,
      memoryBudgetBytes: 32 * MiB,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeltaError);
    expect((error as DeltaError).reason).toBe('budget-too-small');
  });

  it('a version-1 decoder refuses a version-2 header (what an old agent does with one)', async () => {
    const source = randomBytesFrom(seededRandom(8), 64 * KiB);
    const dir = join(root, 'v1-reader');
    writeFileSync(`${dir}-old`, source);
    await buildDeltaV2({ sourceFile: `${dir}-old`, targetFile: `${dir}-old`, outFile: `${dir}-patch` });
    const head = readFileSync(`${dir}-patch`).subarray(0, DELTA_HEADER_BYTES);
    expect(() => decodeHeader(head)).toThrow(
      expect.objectContaining({ reason: 'unsupported-version' }) as unknown as Error,
    );
  });
});
