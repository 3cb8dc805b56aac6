// Mutation testing of the code that decides "exactly one running copy" (npm run mutation; not in CI: it takes
// a while). StrykerJS mutates each file, runs the unit specs that cover the mutant (jest in ESM mode, the same
// transform as `npm run test:unit`), and reports mutants no test noticed. Results: reports/mutation/.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'jest',
  testRunnerNodeArgs: ['--experimental-vm-modules'],
  jest: { projectType: 'custom', configFile: 'jest.mutation.config.js', enableFindRelatedTests: false },
  coverageAnalysis: 'perTest',
  mutate: [
    'libs/engine/src/rollback.ts',
    'libs/engine/src/recovery.ts',
    // The engine's phase guard (the cancel and commit claims, a lost node-lock lease), attempt and settle.
    'libs/engine/src/migration-engine.ts:239-326',
    'libs/store/src/migration-flags.ts',
    'apps/orchestrator/src/migrations/migration-cancel.service.ts',
    'libs/engine/src/steps/preflight-checks.ts',
    'libs/transport/src/host-key.ts',
    'libs/notices/src/dedup/notice-deduplicator.ts',
    'libs/notices/src/dedup/in-memory-dedup-store.ts',
    'libs/notices/src/dedup/redis-dedup-store.ts',
  ],
  // Error and log wording: a mutant that changes a message is not a second running copy, and there are
  // hundreds of them; every other mutator runs (conditions, operators, blocks, booleans, optional chaining...).
  mutator: { excludedMutations: ['StringLiteral'] },
  // Type errors a mutant causes are not test gaps; ts-jest runs without diagnostics anyway.
  disableTypeChecks: true,
  checkers: [],
  concurrency: 2,
  // Beyond the covering tests' own time: jest's ESM start-up is not part of it, and on a loaded machine a
  // lower margin turns slow runs into false timeouts (which Stryker counts as killed).
  timeoutMS: 10_000,
  // A re-run after new tests only tests mutants whose code or tests changed (reports/stryker-incremental.json).
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  // event-recorder writes each tested mutant as it ends (reports/mutation/events): a run cut short still tells.
  reporters: ['clear-text', 'progress-append-only', 'html', 'json', 'event-recorder'],
  eventReporter: { baseDir: 'reports/mutation/events' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  ignorePatterns: ['dist', '.lab', 'reports', 'coverage', 'bench', 'scripts/lab/qemu'],
  cleanTempDir: true,
};
