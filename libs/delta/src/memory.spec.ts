import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDelta } from './apply.js';
import { DELTA_APPLIER_EXEC_ARGV, DELTA_BUILDER_ENV } from './limits.js';
import type { BuildDeltaResult } from './build.js';
import { buildDeltaV2 } from './build-v2.js';
import { writeFilesystemLikePair } from './testing.js';

const MiB = 1024 * 1024;
const BUDGET = 64 * MiB;
/**
 * What the child holds before it builds anything: Node itself, the TypeScript compiler hook this test loads
 * it with, and the imported code (libs/errors pulls in NestJS). Measured 116 MiB; the assertion allows 160.
 */
const DOCUMENTED_BASELINE = 160 * MiB;

// The build runs in a child process, so its peak RSS is the build's alone (not the test runner's), and the
// child compiles this lib's TypeScript with @swc/core through module hooks, as vitest does here. It gets
// DELTA_BUILDER_ENV, as a delta worker must (see limits.ts).
const require = createRequire(import.meta.url);
const SWC = require.resolve('@swc/core');
const HOOKS = `
import { registerHooks, createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const swc = createRequire(${JSON.stringify(SWC)})(${JSON.stringify(SWC)});
registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context);
    } catch (error) {
      if (/^\\.\\.?\\//.test(specifier) && specifier.endsWith('.js')) return next(specifier.slice(0, -3) + '.ts', context);
      throw error;
    }
  },
  load(url, context, next) {
    if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
    const filename = fileURLToPath(url);
    const { code } = swc.transformSync(readFileSync(filename, 'utf8'), {
      filename,
      swcrc: false,
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
        target: 'es2023',
      },
      module: { type: 'es6' },
    });
    return { format: 'module', source: code, shortCircuit: true };
  },
});
`;
// One child script for the measured builds and applies: it imports this lib's index, notes its baseline,
// runs one call and reports its peak.
const CHILD = `
const lib = await import(process.argv[1]);
const [mode, json] = process.argv.slice(2);
const options = JSON.parse(json);
// VmHWM is this process's own high-water mark: getrusage's maxRSS carries the spawning process's RSS over
// exec, so a child of a large test runner would report the runner's size as its baseline.
const { readFileSync } = await import('node:fs');
const hwm = () => Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const baseline = hwm();
const result =
  mode === 'apply'
    ? await lib.applyDelta({ ...options, delta: (await import('node:fs')).createReadStream(options.deltaFile) })
    : await lib.buildDelta(options);
process.stdout.write(JSON.stringify({ baseline, peak: hwm(), result }));
`;

interface ChildReport<T> {
  baseline: number;
  peak: number;
  result: T;
}

function runInChild<T>(mode: 'build' | 'apply', options: Record<string, unknown>): Promise<ChildReport<T>> {
  const child = spawn(
    process.execPath,
    [
      ...(mode === 'apply' ? DELTA_APPLIER_EXEC_ARGV : []),
      '--conditions=otter-source',
      '--import',
      `data:text/javascript,${encodeURIComponent(HOOKS)}`,
      '--input-type=module',
      '-e',
      CHILD,
      new URL('./index.ts', import.meta.url).href,
      mode,
      JSON.stringify(options),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', ...DELTA_BUILDER_ENV } },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(JSON.parse(stdout) as ChildReport<T>);
      else reject(new Error(`${mode} child exited with ${code}: ${stderr}`));
    });
  });
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'otter-delta-memory-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('memory budget', () => {
  it('builds a 48 MiB pair within a 64 MiB budget (peak RSS of the building process)', async () => {
    const pair = writeFilesystemLikePair({ dir, sizeBytes: 48 * MiB, seed: 21, changeRate: 0.06 });
    const outFile = join(dir, 'pair.delta');
    const report = await runInChild<BuildDeltaResult>('build', {
      sourceFile: pair.sourceFile,
      targetFile: pair.targetFile,
      outFile,
      memoryBudgetBytes: BUDGET,
      workDir: dir,
    });
    const { baseline, peak, result } = report;
    console.log(
      `delta memory: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, ` +
        `build ${((peak - baseline) / MiB).toFixed(1)} MiB of ${BUDGET / MiB}; extent ${result.maxExtentBytes}, ` +
        `ops ${JSON.stringify(result.operations)}, patch ${result.patchLength} of ${result.target.length}, ${result.seconds.toFixed(2)} s`,
    );
    // Both images are each most of the budget: a build holding either one would break these.
    expect(pair.sourceLength).toBeGreaterThan(BUDGET / 2);
    expect(result.operations.bsdiff).toBeGreaterThan(0);
    expect(result.peakExtentBytes).toBeLessThanOrEqual(result.maxExtentBytes + result.maxWindowBytes);
    expect(peak - baseline).toBeLessThanOrEqual(BUDGET);
    expect(peak).toBeLessThanOrEqual(BUDGET + DOCUMENTED_BASELINE);

    const out = join(dir, 'pair.out');
    await applyDelta({
      sourceFile: pair.sourceFile,
      delta: createReadStream(outFile),
      outFile: out,
      expectedTarget: result.target,
    });
    expect(readFileSync(out).equals(readFileSync(pair.targetFile))).toBe(true);
  });

  // Issue 13's bound for small devices. The child runs with DELTA_BUILDER_ENV and DELTA_APPLIER_EXEC_ARGV:
  // without a fixed mmap threshold glibc keeps each segment's freed zstd decoder memory resident (measured
  // 41.5 MiB above the baseline on the quick bench's 48 MiB ext4 pair, 27.5 MiB with it), and without small
  // semi-spaces V8 holds up to 16 MiB of each stream chunk's garbage (34-47 MiB above on an idle machine), so
  // an agent applying v2 needs both.
  it('applies a 48 MiB version-2 delta with at most 32 MiB above the applying process baseline', async () => {
    const pair = writeFilesystemLikePair({ dir, sizeBytes: 48 * MiB, seed: 22, changeRate: 0.06 });
    const deltaFile = join(dir, 'pair.v2.delta');
    // zstd level 3: what is measured is the applier, and at level 22 building this pair took ~20 s, which
    // ran past the test timeout in a loaded full run.
    const built = await buildDeltaV2({
      sourceFile: pair.sourceFile,
      targetFile: pair.targetFile,
      outFile: deltaFile,
      zstdLevel: 3,
    });
    const out = join(dir, 'pair.v2.out');
    const { baseline, peak } = await runInChild('apply', {
      sourceFile: pair.sourceFile,
      deltaFile,
      outFile: out,
      expectedTarget: built.target,
    });
    console.log(
      `delta v2 apply memory: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, ` +
        `${((peak - baseline) / MiB).toFixed(1)} MiB above; patch ${built.patchLength} of ${built.target.length}`,
    );
    expect(readFileSync(out).equals(readFileSync(pair.targetFile))).toBe(true);
    expect(peak - baseline).toBeLessThanOrEqual(32 * MiB);
  });
});
