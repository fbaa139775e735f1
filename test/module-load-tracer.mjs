// Preloaded with `node --import ./test/module-load-tracer.mjs`: appends the URL of every module the process
// loads (ESM and CommonJS alike, through Node's synchronous module hooks) to the file named by
// OTTER_MODULE_TRACE, one per line. Tests read it to prove what a command does not load.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const traceFile = process.env.OTTER_MODULE_TRACE;
if (!traceFile) throw new Error('module-load-tracer: set OTTER_MODULE_TRACE to the file to append to');

registerHooks({
  load(url, context, nextLoad) {
    appendFileSync(traceFile, `${url}\n`);
    return nextLoad(url, context);
  },
});
