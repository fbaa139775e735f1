/**
 * What a bench must undo (processes, temp dirs, database schemas), run newest first by `cleanup()` at the
 * end, or on the first SIGINT/SIGTERM (a second one exits at once).
 * @param {(message: string) => void} log
 */
export function cleanupOnExit(log) {
  /** @type {Array<() => Promise<void> | void>} */
  const cleanups = [];
  let interrupted = false;
  async function cleanup() {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (error) {
        log(`cleanup: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      log(`${sig}: stopping`);
      void cleanup().then(() => process.exit(130));
    });
  }
  return { cleanups, cleanup };
}

/**
 * BENCH_DIALECTS (default both): the databases a bench runs on; exits 2 on anything else.
 * @param {(message: string) => void} log
 */
export function benchDialects(log) {
  const dialects = (process.env.BENCH_DIALECTS ?? 'sqlite,postgres').split(',').map((d) => d.trim());
  if (dialects.length === 0 || dialects.some((d) => d !== 'sqlite' && d !== 'postgres')) {
    log(`BENCH_DIALECTS must list sqlite and/or postgres, not ${JSON.stringify(process.env.BENCH_DIALECTS)}`);
    process.exit(2);
  }
  return dialects;
}
