import type { Reporter, TestModule } from 'vitest/node';

const SLOWEST_SHOWN = 8;

/**
 * Ends the run with the slowest files (the suite has a 10-minute budget; CI logs should say where it goes)
 * and the plain `N passed, N failed, N skipped` line that CI tooling reads.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let failedHere = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      // A file that fails outside any test (import error, failing hook) counts as one failure.
      failed += failedHere === 0 && mod.state() === 'failed' ? 1 : failedHere;
    }
    const slowest = testModules
      .map((mod) => ({ file: mod.relativeModuleId, seconds: mod.diagnostic().duration / 1000 }))
      .sort((a, b) => b.seconds - a.seconds)
      .slice(0, SLOWEST_SHOWN);
    process.stdout.write('\nslowest files (tests and hooks):\n');
    for (const { file, seconds } of slowest)
      process.stdout.write(`  ${seconds.toFixed(1).padStart(6)} s  ${file}\n`);
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
