// The worker's journal against its own specs (`npx stryker run stryker.journal.config.js` with
// NODE_OPTIONS=--experimental-vm-modules): about 2 minutes here; see README "Mutation testing".
import base from './stryker.config.js';

export default {
  ...base,
  mutate: ['libs/store/src/journaled-repository.ts'],
  jest: { ...base.jest, configFile: 'jest.mutation-journal.config.js' },
  incrementalFile: 'reports/stryker-journal-incremental.json',
  eventReporter: { baseDir: 'reports/mutation-journal/events' },
  htmlReporter: { fileName: 'reports/mutation-journal/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation-journal/mutation.json' },
};
