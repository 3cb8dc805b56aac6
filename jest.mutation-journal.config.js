// The specs of the worker's journal (stryker.journal.config.js): the write-back's order of copies across worker
// hosts decides which copy of a migration stands after Redis came back empty, so each rule is pinned there.
import unit from './jest.mutation.config.js';

export default {
  ...unit,
  testMatch: [
    '<rootDir>/libs/store/src/journal-order.spec.ts',
    '<rootDir>/libs/store/src/journaled-repository.spec.ts',
  ],
};
