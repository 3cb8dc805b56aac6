import type { CommandResult } from '@spotlift/transport';

/** A command's result with the node-side times around it (node-scripts `timed`). */
export interface TimedResult extends CommandResult {
  startNs?: bigint;
  endNs?: bigint;
}

/** A command waiting on its node for fire(); cancel() does nothing once it fired, so it may always be called. */
export interface ArmedCommand {
  fire(): Promise<TimedResult>;
  cancel(): Promise<void>;
}
