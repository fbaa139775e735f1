import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDelta } from './apply.js';
import { bsdiffStats } from './bsdiff.js';
import { assembleDelta, buildDelta, buildExtent } from './build.js';
import {
  DELTA_HEADER_BYTES,
  OP_HEADER_BYTES,
  decodeHeader,
  decodeOperation,
  operationType,
} from './format.js';
import { extentLimitsFor } from './limits.js';
import { planDelta } from './plan.js';
import { randomBytesFrom, seededRandom, textFrom, writeFilesystemLikePair } from './testing.js';

const MiB = 1024 * 1024;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Operation types of a delta file, in order (walks headers and skips payloads). */
function operationsOf(delta: Buffer): string[] {
  const header = decodeHeader(delta.subarray(0, DELTA_HEADER_BYTES));
  const types: string[] = [];
  let at = DELTA_HEADER_BYTES;
  for (let i = 0; i < header.operationCount; i++) {
    const type = operationType(delta[at]!);
    const op = decodeOperation(delta.subarray(at, at + OP_HEADER_BYTES[type]));
    at += OP_HEADER_BYTES[type] + ('payloadLength' in op ? op.payloadLength : 0);
    types.push(['', 'copy', 'zero', 'bsdiff', 'raw'][op.type]!);
  }
  expect(at).toBe(delta.length);
  return types;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'otter-delta-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('buildDelta + applyDelta', () => {
  it('round-trips a filesystem-like pair byte for byte, with every operation type, much smaller than the target', async () => {
    const pair = writeFilesystemLikePair({ dir, sizeBytes: 8 * MiB, seed: 7 });
    const deltaFile = join(dir, 'pair.delta');
    const progress: number[] = [];
    const built = await buildDelta({
      sourceFile: pair.sourceFile,
      targetFile: pair.targetFile,
      outFile: deltaFile,
      memoryBudgetBytes: 64 * MiB,
      onProgress: (p) => progress.push(p.percent),
    });
    const target = readFileSync(pair.targetFile);
    expect(built.target).toEqual({ length: target.length, sha256: sha256(target) });
    expect(built.operations.copy).toBeGreaterThan(0);
    expect(built.operations.zero).toBeGreaterThan(0);
    expect(built.operations.bsdiff).toBeGreaterThan(0);
    expect(built.operations.raw).toBeGreaterThan(0);
    const delta = readFileSync(deltaFile);
    expect(delta.length).toBe(built.patchLength);
    // The changed files are ~1/8 of the image and mostly text; the rest must cost (almost) nothing.
    expect(built.patchLength).toBeLessThan(target.length / 5);
    expect(progress.at(-1)).toBe(100);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));

    const outFile = join(dir, 'pair.out');
    const result = await applyDelta({
      sourceFile: pair.sourceFile,
      delta: createReadStream(deltaFile),
      outFile,
      expectedTarget: built.target,
    });
    expect(result).toEqual(built.target);
    expect(readFileSync(outFile).equals(target)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('otter-delta'))).toEqual([]);
  });
});

/** Writes `parts` ([offset, bytes]) into a sparse file of `length` bytes. */
function writeSparse(path: string, length: number, parts: Array<[number, Buffer]>): void {
  writeFileSync(path, '');
  truncateSync(path, length);
  const fd = openSync(path, 'r+');
  for (const [offset, bytes] of parts) writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

function isZeroBlock(view: Buffer): boolean {
  return view.every((b) => b === 0);
}

describe('planner', () => {
  it('derives the extent size from the memory budget (39 budget bytes per extent byte after a 32 MiB reserve)', () => {
    const small = extentLimitsFor(1024 * MiB, 8 * MiB, 8 * MiB);
    expect(small.maxExtentBytes).toBe(
      Math.floor((1024 * MiB - 32 * MiB - small.indexBytes) / 39 / 4096) * 4096,
    );
    expect(small.maxWindowBytes).toBe(2 * small.maxExtentBytes);
    expect(small.maxExtentBytes).toBeGreaterThan(25 * MiB);
    const large = extentLimitsFor(1024 * MiB, 4096 * MiB, 4096 * MiB);
    expect(large.indexBytes).toBeGreaterThan(16 * MiB);
    expect(large.maxExtentBytes).toBeLessThan(small.maxExtentBytes);
    expect(() => extentLimitsFor(32 * MiB, 8 * MiB, 8 * MiB)).toThrow(
      expect.objectContaining({ reason: 'budget-too-small' }),
    );
  });

  it('turns an all-zero target into one ZERO operation and never calls bsdiff', async () => {
    const sourceFile = join(dir, 'zero-src.img');
    const targetFile = join(dir, 'zero-dst.img');
    const random = seededRandom(1);
    writeSparse(sourceFile, 64 * MiB, [[8 * MiB, textFrom(random, 4 * MiB)]]);
    writeSparse(targetFile, 64 * MiB, []);
    const plan = await planDelta({ sourceFile, targetFile, memoryBudgetBytes: 64 * MiB });
    expect(plan.operations).toEqual([{ type: 'zero', targetOffset: 0, length: 64 * MiB }]);
    expect(plan.items).toEqual([]);
    const calls = bsdiffStats.calls;
    const built = await buildDelta({
      sourceFile,
      targetFile,
      outFile: join(dir, 'zero.delta'),
      memoryBudgetBytes: 64 * MiB,
    });
    expect(built.operations).toEqual({ copy: 0, zero: 1, bsdiff: 0, raw: 0 });
    expect(bsdiffStats.calls).toBe(calls);
    expect(built.patchLength).toBeLessThan(200);
  });

  it('keeps zero blocks and repetitive runs out of every bsdiff input, and bsdiff inputs within the limits', async () => {
    const sourceFile = join(dir, 'runs-src.img');
    const targetFile = join(dir, 'runs-dst.img');
    const random = seededRandom(2);
    const sourceParts: Array<[number, Buffer]> = [];
    const targetParts: Array<[number, Buffer]> = [];
    for (let at = 0; at < 48 * MiB; at += 8 * MiB) {
      const text = textFrom(random, 2 * MiB);
      sourceParts.push([at, text]);
      // In the target: the text edited, interleaved with zeroed stretches and a 0xAB fill, at odd lengths.
      const edited = Buffer.from(text);
      for (let i = 100; i < edited.length; i += 900) edited[i] = 0x5a;
      edited.fill(0, 300 * 1024, 1100 * 1024 + 123);
      edited.fill(0xab, 1300 * 1024, 1700 * 1024 + 77);
      targetParts.push([at, edited]);
    }
    writeSparse(sourceFile, 48 * MiB, sourceParts);
    writeSparse(targetFile, 48 * MiB, targetParts);
    const plan = await planDelta({ sourceFile, targetFile, memoryBudgetBytes: 64 * MiB });
    const target = readFileSync(targetFile);
    const diffItems = plan.items.filter((item) => item.kind === 'diff');
    expect(diffItems.length).toBeGreaterThan(0);
    expect(plan.items.some((item) => item.kind === 'raw')).toBe(true);
    for (const item of diffItems) {
      expect(item.length).toBeLessThanOrEqual(plan.limits.maxExtentBytes);
      expect(item.window!.srcLength).toBeLessThanOrEqual(plan.limits.maxWindowBytes);
      let fillRun = 0;
      for (let at = item.targetOffset; at < item.targetOffset + item.length; at += 4096) {
        const block = target.subarray(at, Math.min(at + 4096, item.targetOffset + item.length));
        if (block.length === 4096) expect(isZeroBlock(block)).toBe(false);
        fillRun = block.every((b) => b === 0xab) ? fillRun + 1 : 0;
        expect(fillRun).toBeLessThan(4);
      }
    }
    const before = { ...bsdiffStats };
    const deltaFile = join(dir, 'runs.delta');
    const built = await buildDelta({
      sourceFile,
      targetFile,
      outFile: deltaFile,
      memoryBudgetBytes: 64 * MiB,
    });
    expect(bsdiffStats.calls - before.calls).toBeGreaterThan(0);
    expect(bsdiffStats.calls - before.calls).toBeLessThanOrEqual(diffItems.length);
    expect(bsdiffStats.largestNewBytes).toBeLessThanOrEqual(plan.limits.maxExtentBytes);
    expect(bsdiffStats.largestOldBytes).toBeLessThanOrEqual(plan.limits.maxWindowBytes);
    expect(built.operations.bsdiff).toBeGreaterThan(0);
    const out = join(dir, 'runs.out');
    await applyDelta({
      sourceFile,
      delta: createReadStream(deltaFile),
      outFile: out,
      expectedTarget: built.target,
    });
    expect(readFileSync(out).equals(target)).toBe(true);
  });

  it('stores random, incompressible changes as RAW (bsdiff is not smaller)', async () => {
    const random = seededRandom(3);
    const source = randomBytesFrom(random, 2 * MiB);
    const target = Buffer.from(source);
    for (const at of [100 * 4096, 250 * 4096, 400 * 4096])
      randomBytesFrom(random, 64 * 1024).copy(target, at);
    const sourceFile = join(dir, 'random-src.img');
    const targetFile = join(dir, 'random-dst.img');
    writeFileSync(sourceFile, source);
    writeFileSync(targetFile, target);
    const deltaFile = join(dir, 'random.delta');
    const built = await buildDelta({
      sourceFile,
      targetFile,
      outFile: deltaFile,
      memoryBudgetBytes: 64 * MiB,
    });
    expect(built.operations).toEqual({ copy: 4, zero: 0, bsdiff: 0, raw: 3 });
    expect(operationsOf(readFileSync(deltaFile))).toEqual([
      'copy',
      'raw',
      'copy',
      'raw',
      'copy',
      'raw',
      'copy',
    ]);
  });

  it('gives a pair that fits one extent a single bsdiff over the whole old image', async () => {
    const random = seededRandom(11);
    const source = textFrom(random, 512 * 1024);
    // Insertions that shift everything after them by an unaligned amount: no block copies, all diff.
    const target = Buffer.concat([
      source.subarray(0, 1000),
      Buffer.from('inserted'),
      source.subarray(1000, 300_000),
      Buffer.from('also inserted'),
      source.subarray(300_000),
    ]);
    const sourceFile = join(dir, 'whole-src.img');
    const targetFile = join(dir, 'whole-dst.img');
    writeFileSync(sourceFile, source);
    writeFileSync(targetFile, target);
    const plan = await planDelta({ sourceFile, targetFile, memoryBudgetBytes: 64 * MiB });
    expect(plan.items).toHaveLength(1);
    expect(plan.items[0]!.window).toEqual({ srcOffset: 0, srcLength: source.length });
    const deltaFile = join(dir, 'whole.delta');
    const built = await buildDelta({
      sourceFile,
      targetFile,
      outFile: deltaFile,
      memoryBudgetBytes: 64 * MiB,
    });
    expect(built.operations).toEqual({ copy: 0, zero: 0, bsdiff: 1, raw: 0 });
    expect(statSync(deltaFile).size).toBeLessThan(2000);
    const outFile = join(dir, 'whole-out.img');
    await applyDelta({
      sourceFile,
      delta: createReadStream(deltaFile),
      outFile,
      expectedTarget: built.target,
    });
    expect(readFileSync(outFile).equals(target)).toBe(true);
  });

  it('finds blocks moved to another offset and copies them from where they were', async () => {
    const random = seededRandom(4);
    const source = textFrom(random, 2 * MiB);
    const target = Buffer.from(source);
    source.copy(target, 1024 * 1024, 256 * 1024, 512 * 1024);
    const sourceFile = join(dir, 'moved-src.img');
    const targetFile = join(dir, 'moved-dst.img');
    writeFileSync(sourceFile, source);
    writeFileSync(targetFile, target);
    const plan = await planDelta({ sourceFile, targetFile });
    expect(plan.operations).toEqual([
      { type: 'copy', targetOffset: 0, length: 1024 * 1024, srcOffset: 0 },
      { type: 'copy', targetOffset: 1024 * 1024, length: 256 * 1024, srcOffset: 256 * 1024 },
      { type: 'copy', targetOffset: 1280 * 1024, length: 768 * 1024, srcOffset: 1280 * 1024 },
    ]);
  });

  it('copies an identical unaligned image without any extent, and builds from an empty source with ZERO and RAW only', async () => {
    const random = seededRandom(6);
    const image = Buffer.concat([textFrom(random, 3 * MiB + 1234), Buffer.alloc(MiB), textFrom(random, 777)]);
    const sourceFile = join(dir, 'same-src.img');
    const targetFile = join(dir, 'same-dst.img');
    writeFileSync(sourceFile, image);
    writeFileSync(targetFile, image);
    const same = await planDelta({ sourceFile, targetFile });
    // The partial last block (after a zero run, so no run to continue) matches the source's own tail.
    expect(same.operations.map((op) => op.type)).toEqual(['copy', 'zero', 'copy']);
    expect(same.operations.at(-1)).toMatchObject({ targetOffset: 4 * MiB, length: 2011, srcOffset: 4 * MiB });
    expect(same.items).toEqual([]);

    const emptyFile = join(dir, 'empty.img');
    writeFileSync(emptyFile, '');
    const deltaFile = join(dir, 'from-empty.delta');
    const built = await buildDelta({
      sourceFile: emptyFile,
      targetFile,
      outFile: deltaFile,
      memoryBudgetBytes: 64 * MiB,
    });
    expect(built.operations.copy + built.operations.bsdiff).toBe(0);
    const out = join(dir, 'from-empty.out');
    await applyDelta({
      sourceFile: emptyFile,
      delta: createReadStream(deltaFile),
      outFile: out,
      expectedTarget: built.target,
    });
    expect(readFileSync(out).equals(image)).toBe(true);
  });

  it('builds extents as independent items (any order, any process) and assembles them', async () => {
    const pair = writeFilesystemLikePair({
      dir: mkdtempSync(join(dir, 'fan-')),
      sizeBytes: 4 * MiB,
      seed: 11,
      changeRate: 0.3,
    });
    // The plan travels as JSON (a job's data), and extents are built concurrently, last first.
    const plan = JSON.parse(
      JSON.stringify(
        await planDelta({
          sourceFile: pair.sourceFile,
          targetFile: pair.targetFile,
          memoryBudgetBytes: 64 * MiB,
        }),
      ),
    ) as Awaited<ReturnType<typeof planDelta>>;
    expect(plan.items.length).toBeGreaterThan(2);
    const built = await Promise.all([...plan.items].reverse().map((item) => buildExtent(item)));
    built.reverse();
    const deltaFile = join(dir, 'fan.delta');

    // A result filed under the wrong item is refused and leaves no delta behind.
    const swapped = [...built];
    [swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!];
    await expect(assembleDelta(plan, swapped, deltaFile)).rejects.toMatchObject({ reason: 'bad-plan' });
    expect(existsSync(deltaFile)).toBe(false);

    const assembled = await assembleDelta(plan, built, deltaFile);
    expect(assembled.patchLength).toBe(statSync(deltaFile).size);
    expect(
      assembled.operations.copy +
        assembled.operations.zero +
        assembled.operations.bsdiff +
        assembled.operations.raw,
    ).toBe(plan.operations.length);
    const out = join(dir, 'fan.out');
    await applyDelta({
      sourceFile: pair.sourceFile,
      delta: createReadStream(deltaFile),
      outFile: out,
      expectedTarget: plan.target,
    });
    expect(readFileSync(out).equals(readFileSync(pair.targetFile))).toBe(true);
  });
});
