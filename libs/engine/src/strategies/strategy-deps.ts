import type { DirectoryStreamer } from '@spotlift/transport';
import type { EngineConfig } from '../engine.types.js';
import type { WorkloadFiles } from '../files/workload-files.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import type { MigrationSteps } from '../steps/migration-steps.js';
import type { PageTransports } from '../transports/page-transports.js';

/**
 * What a strategy works with, each named: the node operations, the phase recorder and the engine's config
 * are used directly (and the declared files); `steps` holds only what every strategy shares (preflight, restore, verify, commit, stats).
 */
export interface StrategyDeps {
  ops: NodeOps;
  phases: PhaseRecorder;
  config: EngineConfig;
  steps: MigrationSteps;
  streamer: DirectoryStreamer;
  transports: PageTransports;
  /** The workload's declared files (absent where nothing streams them: checkpoints, a bare engine in a unit test). */
  files?: WorkloadFiles;
}
