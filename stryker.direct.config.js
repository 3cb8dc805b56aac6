// Mutation testing of rollback.ts and preflight-checks.ts against their direct specs only (issue 9): every
// decision there must be pinned by a spec of its own, not only by whole engine scenarios. One runner (the
// machine is shared); incremental, so a re-run after new specs tests only what changed.
//   NODE_OPTIONS=--experimental-vm-modules npx stryker run stryker.direct.config.js
import base from './stryker.config.js';

export default {
  ...base,
  mutate: ['libs/engine/src/rollback.ts', 'libs/engine/src/steps/preflight-checks.ts'],
  jest: { ...base.jest, configFile: 'jest.mutation-direct.config.js' },
  concurrency: 1,
  incrementalFile: 'reports/stryker-direct-incremental.json',
  eventReporter: { baseDir: 'reports/mutation-direct/events' },
  htmlReporter: { fileName: 'reports/mutation-direct/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation-direct/mutation.json' },
};
