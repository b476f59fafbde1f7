import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Resolve the package's own name to its TypeScript sources, so tests need no build first.
    conditions: ['oao-source', 'module', 'node', 'import', 'default'],
  },
  ssr: {
    resolve: {
      conditions: ['oao-source', 'module', 'node', 'import', 'default'],
      externalConditions: ['oao-source'],
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
  },
});
