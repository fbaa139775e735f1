import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

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
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
