/**
 * The evacuation's model parameters derived from its input: links, per-stream ceilings, the value of a
 * workload, and which destinations can ever take a workload during one plan.
 */
import { hardFilter, type PlacementOptions } from './choose-destination.js';
import type { EvacuationInput } from './evacuation-types.js';
import type { Links } from './transfer-sim.js';
import type { CandidateNode, PlacementWorkload } from './types.js';

/** Links of the model for this evacuation. */
export function linksOf(input: EvacuationInput): Links {
  const inbound: Record<string, number> = {};
  for (const d of input.destinations)
    if (d.inboundBandwidthBytesPerSec !== undefined) inbound[d.id] = d.inboundBandwidthBytesPerSec;
  return {
    sourceBytesPerSec: input.sourceOutboundBytesPerSec,
    inboundBytesPerSec: inbound,
    ...(input.parallelDumpSlowdown ? { contention: input.parallelDumpSlowdown } : {}),
  };
}

/** The ceiling of one stream from the source to `destId`. */
export function streamCap(input: EvacuationInput, destId: string): number {
  return streamCapOf(
    input,
    input.destinations.find((x) => x.id === destId),
  );
}

/** The ceiling of one stream from the source to `d`: source link, pipeline cap, pair and inbound bandwidth. */
export function streamCapOf(input: EvacuationInput, d: CandidateNode | undefined): number {
  const inf = Number.POSITIVE_INFINITY;
  return Math.min(
    input.sourceOutboundBytesPerSec,
    input.perMigrationMaxBytesPerSec ?? inf,
    d?.bandwidthFromSourceBytesPerSec ?? inf,
    d?.inboundBandwidthBytesPerSec ?? inf,
  );
}

/** Codes that can change while a plan unfolds; every other exclusion holds for the whole plan. */
const DYNAMIC = new Set(['insufficient-memory', 'anti-affinity']);

/** Per workload, the destinations passing the filters that cannot change during a plan. */
export function staticEligible(
  input: EvacuationInput,
  workloads: readonly PlacementWorkload[],
  failedOn: Readonly<Record<string, readonly string[]>>,
): Map<string, CandidateNode[]> {
  const out = new Map<string, CandidateNode[]>();
  for (const w of workloads) {
    const options: PlacementOptions = {
      ...input.placement,
      excludeNodeIds: [...(input.placement?.excludeNodeIds ?? []), ...(failedOn[w.id] ?? [])],
    };
    out.set(
      w.id,
      input.destinations.filter((d) => hardFilter(w, input.source, d, options).every((r) => DYNAMIC.has(r.code))),
    );
  }
  return out;
}

/** priority x memory: the work a completed migration saves. */
export const valueOf = (w: PlacementWorkload): number => w.priority * w.memoryBytes;
