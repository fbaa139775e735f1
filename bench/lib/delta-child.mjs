// The child processes of bench/delta.bench.mjs, so that each measured peak RSS is one build's or apply's
// alone. Started with DELTA_BUILDER_ENV (see libs/delta/src/limits.ts), as a delta worker must be.
//
//   node delta-child.mjs build  LIB_URL OPTIONS_JSON  -> buildDelta(options); prints one JSON line
//   node delta-child.mjs build-v2 LIB_URL OPTIONS_JSON -> buildDeltaV2(options) (format v2); the same
//   node delta-child.mjs apply  LIB_URL OPTIONS_JSON  -> applyDelta from a file; prints one JSON line
//   node delta-child.mjs worker LIB_URL               -> over IPC: {item, outFile, workDir} -> buildExtent
//
// LIB_URL is the file URL of the built libs/delta index (dist/libs/delta/src/index.js).
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';

const [mode, libUrl, optionsJson] = process.argv.slice(2);
const lib = await import(libUrl);
const rssBytes = () => process.resourceUsage().maxRSS * 1024;
// What the process holds before it builds anything: Node and the loaded code. The budget is on top of it.
const baseline = rssBytes();

if (mode === 'build' || mode === 'build-v2') {
  const options = JSON.parse(optionsJson);
  const started = performance.now();
  const result = await (mode === 'build' ? lib.buildDelta(options) : lib.buildDeltaV2(options));
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ baseline, peak: rssBytes(), seconds, result })}\n`);
} else if (mode === 'apply') {
  const { deltaFile, ...options } = JSON.parse(optionsJson);
  const started = performance.now();
  const result = await lib.applyDelta({ ...options, delta: createReadStream(deltaFile) });
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ baseline, peak: rssBytes(), seconds, result })}\n`);
} else if (mode === 'worker') {
  if (!process.send) throw new Error('worker mode needs an IPC channel');
  process.on('message', (message) => {
    if (message.type === 'done') {
      process.send({ type: 'done', baseline, peak: rssBytes() }, () => process.exit(0));
      return;
    }
    const { item, outFile, workDir } = message;
    const started = performance.now();
    lib.buildExtent(item, { workDir }).then(
      async (bytes) => {
        await writeFile(outFile, bytes);
        process.send({
          type: 'built',
          id: item.id,
          bytes: bytes.length,
          seconds: (performance.now() - started) / 1000,
        });
      },
      (error) => {
        process.send({ type: 'failed', id: item.id, error: String(error?.stack ?? error) });
      },
    );
  });
  process.send({ type: 'ready' });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
