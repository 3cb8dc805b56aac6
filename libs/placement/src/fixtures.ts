/**
 * Builders for the placement specs (not exported from the library's index): sensible defaults so each
 * table row states only what it is about.
 */
import { BYTES } from './format.js';
import type { CandidateNode, PlacementWorkload, SourceNode } from './types.js';

/** Flags shared by the test fleet's CPUs. */
export const BASE_FLAGS = ['sse4_2', 'avx', 'avx2', 'aes'] as const;

/** GiB to bytes. */
export const gib = (n: number): number => n * BYTES.GIB;
/** MiB to bytes. */
export const mib = (n: number): number => n * BYTES.MIB;

/** The reclaimed node: zone a, pool p1, soft-dirty tracking available. */
export function sourceNode(over: Partial<SourceNode> = {}): SourceNode {
  return { id: 'src', zone: 'zone-a', spotPool: 'pool-1', cpu: { flags: [...BASE_FLAGS] }, softDirty: true, ...over };
}

/** A ready spot destination in zone a, pool p2, 32 GiB free, 1 GiB/s from the source. */
export function candidate(id: string, over: Partial<CandidateNode> = {}): CandidateNode {
  return {
    id,
    state: 'ready',
    criuOk: true,
    freeMemoryBytes: gib(32),
    cpu: { flags: [...BASE_FLAGS] },
    zone: 'zone-a',
    spotPool: 'pool-2',
    lifecycle: 'spot',
    labels: {},
    bandwidthFromSourceBytesPerSec: gib(1),
    postCopyTrial: 'ok',
    ...over,
  };
}

/** A 1 GiB workload, priority 5, dirtying 10 MiB/s. */
export function workload(id: string, over: Partial<PlacementWorkload> = {}): PlacementWorkload {
  return { id, memoryBytes: gib(1), dirtyRateBytesPerSec: mib(10), priority: 5, ...over };
}
