#!/usr/bin/env node
// `make bench-delta-large`: a generated filesystem-like image pair of several GiB (default 4; the issue's
// "a 4 GiB image pair must build within the budget") built by Otter's delta builder in a child process under
// /usr/bin/time -v, with the worker's default budget (1024 MiB), then applied and checked byte for byte.
// Prints peak RSS above the child's baseline next to the budget, wall time and patch size.
//
//   node bench/delta-large.bench.mjs
//   BENCH_DELTA_LARGE_GIB=4            image size in GiB (the pair is cached in .otter-bench/large-N)
//   BENCH_DELTA_LARGE_BUDGET_MB=1024   the builder's memory budget
//   BENCH_DELTA_DIST=dist              the tsc output to measure
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const MiB = 1024 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gib = Number(process.env.BENCH_DELTA_LARGE_GIB ?? 4);
const budgetMiB = Number(process.env.BENCH_DELTA_LARGE_BUDGET_MB ?? 1024);
if (!(gib > 0) || !(budgetMiB >= 64)) {
  process.stderr.write('BENCH_DELTA_LARGE_GIB must be > 0 and BENCH_DELTA_LARGE_BUDGET_MB >= 64\n');
  process.exit(2);
}
const distDir = resolve(root, process.env.BENCH_DELTA_DIST ?? 'dist');
const libUrl = pathToFileURL(join(distDir, 'libs', 'delta', 'src', 'index.js')).href;
const childScript = join(root, 'bench', 'lib', 'delta-child.mjs');
const dir = join(root, '.otter-bench', `large-${gib}`);
const log = (message) => process.stderr.write(`[bench-delta-large] ${message}\n`);

const lib = await import(libUrl);
// The generated pair comes from the lib's test kit, which its production index does not export.
const testKit = await import(pathToFileURL(join(distDir, 'libs', 'delta', 'src', 'testing.js')).href);

async function sha256File(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk);
  return hash.digest('hex');
}

/** Runs the delta child under /usr/bin/time -v; resolves with its JSON line and time's peak RSS. */
function runChild(mode, options) {
  const timeFile = join(dir, `time-${mode}.txt`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      '/usr/bin/time',
      ['-v', '-o', timeFile, process.execPath, childScript, mode, libUrl, JSON.stringify(options)],
      { env: { ...process.env, ...lib.DELTA_BUILDER_ENV }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('close', async (code) => {
      if (code !== 0) return reject(new Error(`${mode} child exited with ${code}`));
      const time = await readFile(timeFile, 'utf8');
      const peakKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(time)?.[1]);
      resolvePromise({ ...JSON.parse(out.trim().split('\n').at(-1)), timePeakBytes: peakKiB * 1024 });
    });
  });
}

await mkdir(dir, { recursive: true });
const manifest = join(dir, 'pair.json');
let pair;
if (existsSync(manifest)) {
  pair = JSON.parse(await readFile(manifest, 'utf8'));
  log(`cached ${gib} GiB pair in ${dir}`);
} else {
  log(`writing a ${gib} GiB filesystem-like pair to ${dir} (once; cached)`);
  const started = performance.now();
  pair = testKit.writeFilesystemLikePair({ dir, sizeBytes: gib * 1024 * MiB, seed: 4242, changeRate: 0.004 });
  pair.targetSha256 = await sha256File(pair.targetFile);
  await writeFile(manifest, JSON.stringify(pair));
  log(`pair written in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

const deltaFile = join(dir, 'pair.delta');
const outFile = join(dir, 'out.img');
log(`building with a ${budgetMiB} MiB budget`);
const build = await runChild('build', {
  sourceFile: pair.sourceFile,
  targetFile: pair.targetFile,
  outFile: deltaFile,
  workDir: dir,
  memoryBudgetBytes: budgetMiB * MiB,
});
log('applying');
const apply = await runChild('apply', {
  sourceFile: pair.sourceFile,
  deltaFile,
  outFile,
  expectedTarget: build.result.target,
});
const identical =
  (await stat(outFile)).size === pair.targetLength && (await sha256File(outFile)) === pair.targetSha256;
await rm(outFile, { force: true });

const above = build.peak - build.baseline;
const mib = (bytes) => `${(bytes / MiB).toFixed(0)} MiB`;
const lines = [
  `== ${gib} GiB filesystem-like pair (${JSON.stringify(pair.fates)})`,
  `   old ${pair.sourceLength} bytes, new ${pair.targetLength} bytes`,
  `   build: ${build.seconds.toFixed(0)} s, patch ${build.result.patchLength} bytes ` +
    `(${((100 * build.result.patchLength) / pair.targetLength).toFixed(2)}% of new), ` +
    `operations ${JSON.stringify(build.result.operations)}`,
  `   build memory: baseline ${mib(build.baseline)}, peak ${mib(build.peak)} (time -v: ${mib(build.timePeakBytes)}),` +
    ` ${mib(above)} above baseline = ${(above / (budgetMiB * MiB)).toFixed(2)} of the ${budgetMiB} MiB budget`,
  `   apply: ${apply.seconds.toFixed(0)} s, peak ${mib(apply.peak)}; result ${identical ? 'identical' : 'DIFFERS'}`,
  `   aim: within the budget: ${above <= budgetMiB * MiB ? 'met' : 'NOT met'}`,
];
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(identical ? 0 : 1);
