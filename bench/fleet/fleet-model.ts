/**
 * A synthetic fleet for the evacuation benchmark: nodes of three sizes across three zones, mostly spot,
 * two CPU generations, and workloads with a long-tailed memory distribution packed onto them.
 * Every choice here is a stated assumption (see README.md in this folder), not a measurement.
 */
import type { CandidateNode, PlacementWorkload } from '@spotlift/placement';
import { intIn, logNormal, mulberry32, shuffled, weighted, type Rng } from './rng.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const BASE_FLAGS = ['sse4_2', 'avx', 'avx2', 'aes', 'fma'];

/** Knobs of the fleet; defaults are the benchmark's stated assumptions. */
export interface FleetConfig {
  seed: number;
  nodes: number;
  workloads: number;
  /** Share of nodes that get a notice. */
  noticedFraction: number;
  /** A node is filled up to this fraction of its memory when workloads are packed. */
  packFraction: number;
  /** Memory the node keeps for itself (kernel, agent, page cache floor). */
  systemReserveBytes: number;
}

/** A node with what it runs. */
export interface FleetNode {
  node: CandidateNode;
  capacityBytes: number;
  softDirty: boolean;
  workloads: PlacementWorkload[];
}

/** The generated fleet and which nodes receive notices, in notice order. */
export interface Fleet {
  nodes: FleetNode[];
  noticed: string[];
}

export const DEFAULT_FLEET: FleetConfig = {
  seed: 42,
  nodes: 100,
  workloads: 1000,
  noticedFraction: 0.1,
  packFraction: 0.85,
  systemReserveBytes: GIB,
};

function makeNode(r: Rng, i: number): FleetNode {
  const zone = `zone-${'abc'[i % 3]}`;
  const sizeGib = weighted(r, [
    [16, 0.3],
    [32, 0.5],
    [64, 0.2],
  ] as const);
  const spot = r() < 0.75;
  const newGen = r() < 0.7;
  const node: CandidateNode = {
    id: `n${String(i).padStart(3, '0')}`,
    state: 'ready',
    criuOk: r() < 0.98,
    freeMemoryBytes: sizeGib * GIB,
    cpu: { flags: newGen ? [...BASE_FLAGS, 'avx512f'] : [...BASE_FLAGS] },
    zone,
    ...(spot ? { spotPool: `m${sizeGib}-${zone}` } : {}),
    lifecycle: spot ? 'spot' : 'on-demand',
    labels: { gen: newGen ? 'v4' : 'v3' },
    postCopyTrial: r() < 0.8 ? 'ok' : 'failed',
  };
  return { node, capacityBytes: sizeGib * GIB, softDirty: r() < 0.9, workloads: [] };
}

function makeWorkload(r: Rng, i: number): PlacementWorkload {
  // Median 512 MiB, long tail to 8 GiB: most services are small, a few caches and JVMs are large.
  const memoryBytes = Math.round(logNormal(r, 512 * MIB, 1.2, 64 * MIB, 8 * GIB));
  // Distinct pages dirtied per second: ~1 % of memory per second typical, hot caches far more.
  const dirtyRateBytesPerSec = Math.min(300 * MIB, memoryBytes * logNormal(r, 0.01, 1.0, 0.0005, 0.5));
  const w: PlacementWorkload = {
    id: `w${String(i).padStart(4, '0')}`,
    memoryBytes,
    dirtyRateBytesPerSec,
    priority: intIn(r, 1, 10),
  };
  // One in five belongs to a replica set of size ~3 that must not share a node.
  if (r() < 0.2) w.antiAffinityGroup = `rs${Math.floor(i / 3) % 70}`;
  return w;
}

/** Build the fleet: nodes, workloads packed at random onto nodes with room, and the noticed spot nodes. */
export function generateFleet(cfg: FleetConfig = DEFAULT_FLEET): Fleet {
  const r = mulberry32(cfg.seed);
  const nodes = Array.from({ length: cfg.nodes }, (_, i) => makeNode(r, i));
  const used = new Map(nodes.map((n) => [n.node.id, 0]));
  for (let i = 0; i < cfg.workloads; i++) {
    const w = makeWorkload(r, i);
    const fits = (n: FleetNode): boolean =>
      (used.get(n.node.id) ?? 0) + w.memoryBytes <= cfg.packFraction * n.capacityBytes - cfg.systemReserveBytes &&
      !(w.antiAffinityGroup && n.workloads.some((x) => x.antiAffinityGroup === w.antiAffinityGroup));
    // Random placement with retries, as a scheduler spreading load would do; first fit as a last resort.
    let host: FleetNode | undefined;
    for (let tries = 0; tries < 20 && !host; tries++) {
      const n = nodes[Math.floor(r() * nodes.length)]!;
      if (fits(n)) host = n;
    }
    host ??= nodes.find(fits);
    if (!host) continue;
    host.workloads.push(w);
    used.set(host.node.id, (used.get(host.node.id) ?? 0) + w.memoryBytes);
  }
  for (const n of nodes) {
    n.node.freeMemoryBytes = n.capacityBytes - cfg.systemReserveBytes - (used.get(n.node.id) ?? 0);
    n.node.antiAffinityGroups = n.workloads.flatMap((w) => (w.antiAffinityGroup ? [w.antiAffinityGroup] : []));
  }
  const spotIds = nodes.filter((n) => n.node.lifecycle === 'spot').map((n) => n.node.id);
  const noticed = shuffled(r, spotIds).slice(0, Math.round(cfg.noticedFraction * cfg.nodes));
  return { nodes, noticed };
}
