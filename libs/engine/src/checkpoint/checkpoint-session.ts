import type { CheckpointRecord, MigrationRecord } from '@spotlift/domain';
import type { MigrationContext } from '../engine.types.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import type { MigrationSteps } from '../steps/migration-steps.js';

/** One run of the shared steps on a checkpoint (taking it, or one restore of it): CheckpointFlow makes it. */
export interface CheckpointSession {
  cp: CheckpointRecord;
  ctx: MigrationContext;
  /** The migration-shaped record the shared steps work on (see CheckpointLog). */
  view: MigrationRecord;
  phases: PhaseRecorder;
  steps: MigrationSteps;
}

export const ran = (s: CheckpointSession, name: string): boolean => s.view.phases.some((p) => p.name === name);
/** The commit phase ended well: the end state follows once cleanup is done, so readers never see it early. */
export const committed = (s: CheckpointSession): boolean => s.view.phases.some((p) => p.name === 'commit' && p.ok);
