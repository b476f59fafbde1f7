import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Resolve the package's own name to its TypeScript sources, so tests need no build first.
    conditions: ['oao-source'],
  },
  ssr: {
    resolve: {
      conditions: ['oao-source'],
      // Only this condition is passed on to packages Node loads itself: adding others (such as
      // "module") would make Node pick builds some dependencies do not support under Node.
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
