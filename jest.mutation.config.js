// The unit specs StrykerJS runs against mutants (stryker.config.mjs): jest.config.js's `unit` project as a
// single project (the jest runner does not select projects), restricted to where the mutated files are tested.
import base from './jest.config.js';

const unit = base.projects.find((p) => p.displayName === 'unit');
export default {
  ...unit,
  testMatch: [
    '<rootDir>/libs/engine/src/**/*.spec.ts',
    '<rootDir>/libs/store/src/**/*.spec.ts',
    '<rootDir>/libs/transport/src/**/*.spec.ts',
    '<rootDir>/libs/notices/src/dedup/**/*.spec.ts',
    '<rootDir>/apps/orchestrator/src/migrations/**/*.spec.ts',
    '<rootDir>/apps/orchestrator/src/notices/**/*.spec.ts',
  ],
};
