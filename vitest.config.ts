import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';
import SuiteSequencer from './test/suite-sequencer.js';

export default defineConfig({
  plugins: [
    // SWC instead of esbuild: NestJS needs emitted decorator metadata for constructor injection.
    swc.vite({ module: { type: 'es6' } }),
  ],
  resolve: { conditions: ['otter-source'] },
  ssr: { resolve: { conditions: ['otter-source'], externalConditions: ['otter-source'] } },
  test: {
    include: ['apps/**/*.spec.ts', 'libs/**/*.spec.ts', 'test/**/*.spec.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default on 2 cores is one worker; the tests wait on processes, sockets and timers much of the
    // time, so two files at once take the suite from about 11 to about 7 minutes here (measured 2026-12-05).
    maxWorkers: 2,
    sequence: { sequencer: SuiteSequencer },
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
