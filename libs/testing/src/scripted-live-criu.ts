/**
 * Captured live runs that the engine's specs replay through FakeProcessOps (libs/engine/test/live-harness.ts
 * scriptPreCopyReplayOps, scriptPostCopyReplayOps).
 */
import type { DumpStats } from '@spotlift/domain';

/** One CRIU dump or pre-dump as captured from a real run: its wall time and its stats-dump figures. */
export interface ReplayedDump {
  ms: number;
  stats: DumpStats;
}

/** A real pre-copy run (libs/engine/test/fixtures/qemu-precopy.json): rounds, then the final dump. */
export interface PreCopyReplay {
  rounds: ReplayedDump[];
  final: ReplayedDump;
}

/** A real post-copy run (libs/engine/test/fixtures/lab-postcopy.json); times from the dump's start. */
export interface PostCopyReplay {
  seizedUs: number;
  restoredMs: number;
  allPagesMs: number;
  transferred: string[];
}
