import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDelta } from './apply.js';
import { DELTA_BUILDER_ENV } from './limits.js';
import type { BuildDeltaResult } from './build.js';
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
const CHILD = `
const { buildDelta } = await import(process.argv[1]);
const baseline = process.resourceUsage().maxRSS * 1024;
const result = await buildDelta(JSON.parse(process.argv[2]));
process.stdout.write(JSON.stringify({ baseline, peak: process.resourceUsage().maxRSS * 1024, result }));
`;

interface ChildReport {
  baseline: number;
  peak: number;
  result: BuildDeltaResult;
}

function buildInChild(options: Record<string, unknown>): Promise<ChildReport> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=otter-source',
      '--import',
      `data:text/javascript,${encodeURIComponent(HOOKS)}`,
      '--input-type=module',
      '-e',
      CHILD,
      new URL('./build.ts', import.meta.url).href,
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
      if (code === 0) resolve(JSON.parse(stdout) as ChildReport);
      else reject(new Error(`build child exited with ${code}: ${stderr}`));
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
    const report = await buildInChild({
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
});
