// The specs that call rollback.ts and preflight-checks.ts directly (stryker.direct.config.js): one jest start per
// mutant loads only these, not the engine scenarios, so a run of the two files fits a loaded machine.
import unit from './jest.mutation.config.js';

export default {
  ...unit,
  testMatch: [
    '<rootDir>/libs/engine/src/rollback-decisions.spec.ts',
    '<rootDir>/libs/engine/src/steps/preflight-refusals.spec.ts',
    '<rootDir>/libs/engine/src/steps/preflight-checks.spec.ts',
  ],
};
