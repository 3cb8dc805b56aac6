/**
 * An upper bound on the work any schedule can save: the fractional knapsack over the source link,
 * tightened by the destinations' total free memory through a Lagrangian multiplier.
 * Relaxations: the whole outbound bandwidth is usable by any mix of streams (no per-stream ceiling, no
 * destination inbound limit), items may be split, only one fixed overhead is paid (nothing moves during
 * the first migrations' overhead), and destination memory counts as one pool. Workloads that no candidate
 * can host even alone are left out: no schedule can save them.
 */
import { chooseDestination, hardFilter } from './choose-destination.js';
import type { EvacuationInput } from './evacuation-types.js';
import type { PlacementWorkload } from './types.js';

/** One item of the relaxation: its value, the bytes it must move, and the memory it occupies. */
export interface BoundItem {
  value: number;
  bytes: number;
  memoryBytes?: number;
}

/** One source: its items and what its link can carry before the deadline. */
export interface BoundGroup {
  items: readonly BoundItem[];
  capacityBytes: number;
}

/** The bound and the quantities behind it. */
export interface UpperBound {
  value: number;
  capacityBytes: number;
  memoryBytes: number;
  placeable: number;
}

/** Fractional knapsack: fill `capacityBytes` by value per byte, splitting the last item. */
export function fractionalKnapsack(items: readonly BoundItem[], capacityBytes: number): number {
  const sorted = [...items].sort((a, b) => b.value / Math.max(b.bytes, 1) - a.value / Math.max(a.bytes, 1));
  let left = Math.max(0, capacityBytes);
  let value = 0;
  for (const it of sorted) {
    if (it.bytes <= left) {
      value += it.value;
      left -= it.bytes;
    } else {
      value += it.value * (left / it.bytes);
      break;
    }
  }
  return value;
}

/**
 * Several sources sharing one pool of destination memory: the LP "max value, each link within its
 * capacity, total memory within `memoryCapacityBytes`" bounded by its Lagrangian dual
 * L(l) = l * memory + sum of per-link knapsacks with values reduced by l per memory byte.
 * Every l >= 0 gives a valid bound; the candidates tried are 0 and each item's value per memory byte.
 */
export function sharedMemoryBound(groups: readonly BoundGroup[], memoryCapacityBytes: number): number {
  const link = (lambda: number): number =>
    groups.reduce((s, g) => {
      const items = g.items
        .map((i) => ({ value: i.value - lambda * (i.memoryBytes ?? i.bytes), bytes: i.bytes }))
        .filter((i) => i.value > 0);
      return s + fractionalKnapsack(items, g.capacityBytes);
    }, 0);
  let best = link(0);
  if (!Number.isFinite(memoryCapacityBytes)) return best;
  const lambdas = new Set(groups.flatMap((g) => g.items.map((i) => i.value / Math.max(i.memoryBytes ?? i.bytes, 1))));
  for (const l of lambdas) best = Math.min(best, l * Math.max(0, memoryCapacityBytes) + link(l));
  return best;
}

/** Options shared by the bound helpers. */
export interface BoundOptions {
  /** Evacuation clock at which the bound starts (a re-plan passes its `now`). */
  fromSeconds?: number;
  /** Subtract one fixed overhead (true when nothing is running yet). */
  payOverhead?: boolean;
  /** Bytes still to send for migrations already running. */
  bytesLeft?: Readonly<Record<string, number>>;
}

/**
 * The relaxation's view of one evacuation: its placeable items, its link capacity, and the destinations
 * whose memory may count (those passing every filter except memory and anti-affinity for some item).
 */
export function boundGroup(
  input: EvacuationInput,
  workloads: readonly PlacementWorkload[] = input.workloads,
  opts: BoundOptions = {},
): { group: BoundGroup; destinationIds: Set<string> } {
  const overhead = opts.payOverhead === false ? 0 : input.perMigrationOverheadSeconds;
  const window = input.deadlineSeconds - (opts.fromSeconds ?? 0) - overhead;
  const capacityBytes = input.sourceOutboundBytesPerSec * Math.max(0, window);
  const items: BoundItem[] = [];
  const destinationIds = new Set<string>();
  for (const w of workloads) {
    const alone = chooseDestination(w, input.source, input.destinations, input.placement);
    if (!alone.ok) continue;
    items.push({
      value: w.priority * w.memoryBytes,
      bytes: opts.bytesLeft?.[w.id] ?? w.memoryBytes,
      memoryBytes: w.memoryBytes,
    });
    for (const d of input.destinations) {
      const reasons = hardFilter(w, input.source, d, input.placement);
      if (reasons.every((r) => r.code === 'insufficient-memory' || r.code === 'anti-affinity'))
        destinationIds.add(d.id);
    }
  }
  return { group: { items, capacityBytes }, destinationIds };
}

/** Bound for one evacuation of `workloads` (default: all of the input's). */
export function evacuationUpperBound(
  input: EvacuationInput,
  workloads: readonly PlacementWorkload[] = input.workloads,
  opts: BoundOptions = {},
): UpperBound {
  const { group, destinationIds } = boundGroup(input, workloads, opts);
  const memoryBytes = input.destinations
    .filter((d) => destinationIds.has(d.id))
    .reduce((s, d) => s + Math.max(0, d.freeMemoryBytes - (d.reservedMemoryBytes ?? 0)), 0);
  return {
    value: sharedMemoryBound([group], memoryBytes),
    capacityBytes: group.capacityBytes,
    memoryBytes,
    placeable: group.items.length,
  };
}
