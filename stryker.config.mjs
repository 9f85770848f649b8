// Mutation testing, opt-in: `npm run mutate` (hours for everything), or one file
// with its own tests:
//   STRYKER_TESTS='test/values.test.ts test/function-cache.test.ts' npm run mutate -- --mutate lib/core/values.ts
// Stryker 10 needs Node 22, so core, tap-runner and typescript-checker are pinned at 9.6.1 together.
const testFiles = process.env.STRYKER_TESTS?.split(/[\s,]+/).filter(Boolean) ?? ['test/**/*.test.ts']

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  tap: {
    testFiles,
    // The runner starts `node` per test file, so the TypeScript loader goes here.
    // tsx (esbuild) took half the CPU of `--import @tapjs/typescript/import` with
    // TS_NODE_TRANSPILE_ONLY=1 per test process (1.3 s against 2.5 s user time).
    nodeArgs: ['--import', 'tsx', '-r', '{{hookFile}}', '{{testFile}}']
  },
  // The guarantee files (DESIGN §3, §6); narrow with `-- --mutate <file>`.
  mutate: [
    'lib/core/generations.ts',
    'lib/core/keys.ts',
    'lib/core/values.ts',
    'lib/core/generational-cache.ts',
    'lib/http/http-cache.ts',
    'lib/http/policy.ts',
    'lib/http/entry.ts',
    'lib/store/memory.ts',
    'lib/store/redis.ts'
  ],
  coverageAnalysis: 'perTest',
  // Committed, so a re-run only tests mutants in code (or tests) that changed.
  incremental: true,
  incrementalFile: 'stryker-incremental.json',
  // Two cores shared with Redis and the other test processes.
  concurrency: 1,
  timeoutMS: 30_000,
  ignorePatterns: ['dist', 'reports', 'bench', '.stryker-tmp', '.tap', 'coverage'],
  reporters: ['clear-text', 'progress', 'html'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  thresholds: { high: 90, low: 80, break: null }
}
