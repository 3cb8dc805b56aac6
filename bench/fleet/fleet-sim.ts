/**
 * Fleet evacuation benchmark: a seeded fleet (100 nodes, 1,000 workloads), notices on 10 % of the nodes
 * (spot ones), and the priority-weighted memory each policy saves before the deadlines: the planner vs
 * FIFO (notice order, 1 and 4 at a time) vs a fractional-knapsack upper bound. Figures, not a test.
 *
 * Run: bash bench/fleet/run.sh [--seed=42] [--nodes=100] [--workloads=1000] [--nic-gbps=10] [--stream-mibps=500]
 *      [--overhead=1.5] [--fit=spread] [--verbose]
 */
import { DEFAULT_FLEET, generateFleet, type Fleet } from './fleet-model.js';
import {
  applyOutcome,
  fleetBound,
  evacuationInput,
  initialState,
  runFifo,
  runPlanner,
  runPriorityNoCheck,
  type LinkProfile,
  type Outcome,
} from './policies.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

function arg(name: string, fallback: number): number {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  const v = hit ? Number(hit.slice(name.length + 3)) : fallback;
  if (!Number.isFinite(v)) throw new Error(`--${name} must be a number`);
  return v;
}
const verbose = process.argv.includes('--verbose');

const seed = arg('seed', DEFAULT_FLEET.seed);
const fit = process.argv.includes('--fit=spread') ? ('spread' as const) : ('pack' as const);
const common = {
  memoryFit: fit,
  crossZoneFactor: 0.8,
  overheadSeconds: arg('overhead', 1.5),
  detectionSeconds: 1,
  marginSeconds: 2,
  maxParallel: 8,
};
const profiles: LinkProfile[] = [
  // 10 GbE per node; one migration's stream tops out near what CRIU's page-server path and the ssh2
  // relay reached here (~500 MiB/s), so several streams are needed to fill the NIC.
  {
    name: `${arg('nic-gbps', 10)} GbE NIC, ${arg('stream-mibps', 500)} MiB/s per stream`,
    nicBytesPerSec: (arg('nic-gbps', 10) * 1e9) / 8,
    streamBytesPerSec: arg('stream-mibps', 500) * MIB,
    ...common,
  },
  // Everything through one SSH relay per source: the ~500 MiB/s measured here caps the whole node.
  {
    name: 'SSH relay, 500 MiB/s per node (LAB.md)',
    nicBytesPerSec: 500 * MIB,
    streamBytesPerSec: 500 * MIB,
    ...common,
  },
];
const scenarios: Array<{ name: string; notice: (i: number) => number }> = [
  { name: '120 s (AWS)', notice: () => 120 },
  { name: '30 s (GCP/Azure)', notice: () => 30 },
  { name: 'mixed 50/50', notice: (i) => (i % 2 === 0 ? 120 : 30) },
];

interface Row {
  policy: string;
  value: number;
  saved: number;
  planMs: number[];
  parallelism: number[];
  downtime?: number;
}

function runScenario(
  fleet: Fleet,
  p: LinkProfile,
  notice: (i: number) => number,
): { rows: Row[]; total: number; count: number; bound: number; perNode: string[] } {
  const policies: Array<{ name: string; run: (input: ReturnType<typeof evacuationInput>) => Outcome }> = [
    { name: 'planner (downtime)', run: runPlanner },
    { name: 'planner (finish)', run: (i) => runPlanner({ ...i, objective: 'finish' }) },
    { name: 'FIFO, 1 at a time', run: (i) => runFifo(i, 1) },
    { name: 'FIFO, 4 at a time', run: (i) => runFifo(i, 4) },
    { name: 'priority, 4, no check', run: (i) => runPriorityNoCheck(i, 4) },
  ];
  const rows: Row[] = [];
  const perNode: string[] = [];
  const untouched = initialState(fleet);
  const inputs = fleet.noticed.map((id, i) => evacuationInput(fleet, id, notice(i), p, untouched));
  const total = inputs.reduce((s, input) => s + input.workloads.reduce((a, w) => a + w.priority * w.memoryBytes, 0), 0);
  const count = inputs.reduce((s, input) => s + input.workloads.length, 0);
  const ub = fleetBound(inputs);
  for (const pol of policies) {
    const state = initialState(fleet);
    const row: Row = { policy: pol.name, value: 0, saved: 0, planMs: [], parallelism: [] };
    fleet.noticed.forEach((id, i) => {
      const input = evacuationInput(fleet, id, notice(i), p, state);
      const out = pol.run(input);
      applyOutcome(state, out);
      row.value += out.value;
      row.saved += out.saved;
      if (out.planMs !== undefined) row.planMs.push(out.planMs);
      if (out.parallelism !== undefined) row.parallelism.push(out.parallelism);
      if (out.downtimeSeconds !== undefined) row.downtime = (row.downtime ?? 0) + out.downtimeSeconds;
      if (verbose && pol.name.startsWith('planner (downtime')) {
        const mem = input.workloads.reduce((s, w) => s + w.memoryBytes, 0);
        perNode.push(
          `  ${id}: ${input.workloads.length} workloads, ${(mem / GIB).toFixed(1)} GiB, deadline ${input.deadlineSeconds} s -> saved ${out.saved}, k=${out.parallelism}`,
        );
      }
    });
    rows.push(row);
  }
  return { rows, total, count, bound: ub, perNode };
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const pgib = (v: number): string => (v / GIB).toFixed(0);

const fleet = generateFleet({
  ...DEFAULT_FLEET,
  seed,
  nodes: arg('nodes', DEFAULT_FLEET.nodes),
  workloads: arg('workloads', DEFAULT_FLEET.workloads),
});
const placed = fleet.nodes.reduce((s, n) => s + n.workloads.length, 0);
const noticedMem = fleet.noticed.reduce(
  (s, id) => s + fleet.nodes.find((n) => n.node.id === id)!.workloads.reduce((a, w) => a + w.memoryBytes, 0),
  0,
);
const allMem = fleet.nodes.reduce((s, n) => s + n.workloads.reduce((a, w) => a + w.memoryBytes, 0), 0);
const cap = fleet.nodes.reduce((s, n) => s + n.capacityBytes, 0);
console.log(`spotlift fleet evacuation benchmark (seed ${seed})`);
console.log(
  `fleet: ${fleet.nodes.length} nodes (16/32/64 GiB, 3 zones, ~75 % spot), ${placed} workloads placed, ` +
    `${(allMem / GIB).toFixed(0)} GiB of ${(cap / GIB).toFixed(0)} GiB used; memory log-normal median 512 MiB in [64 MiB, 8 GiB]; priority uniform 1..10`,
);
console.log(
  `notices: ${fleet.noticed.length} spot nodes (${fleet.noticed.join(' ')}), ${(noticedMem / GIB).toFixed(1)} GiB on them`,
);
console.log(
  `deadline = notice - ${common.detectionSeconds} s detection - ${common.marginSeconds} s margin; ${common.overheadSeconds} s fixed overhead per migration; planner up to ${common.maxParallel} at once`,
);
console.log(
  `work = priority x memory (priority-GiB); FIFO = notice order, stop-and-copy, same placement (memory fit: ${fit}), no deadline awareness\n`,
);

for (const p of profiles) {
  console.log(`profile: ${p.name} (NIC ${(p.nicBytesPerSec / 1e9).toFixed(2)} GB/s)`);
  console.log(
    [
      pad('scenario', 18),
      pad('policy', 24),
      lpad('work saved', 11),
      lpad('% total', 8),
      lpad('vs FIFO-1', 10),
      lpad('vs FIFO-4', 10),
      lpad('% bound', 8),
      lpad('saved', 10),
      lpad('plan ms', 12),
      lpad('downtime s', 11),
    ].join(' '),
  );
  for (const sc of scenarios) {
    const r = runScenario(fleet, p, sc.notice);
    const fifo1 = r.rows.find((x) => x.policy.startsWith('FIFO, 1'))!.value;
    const fifo4 = r.rows.find((x) => x.policy.startsWith('FIFO, 4'))!.value;
    for (const row of r.rows) {
      const ms =
        row.planMs.length > 0
          ? `${(row.planMs.reduce((a, b) => a + b, 0) / row.planMs.length).toFixed(0)}/${Math.max(...row.planMs).toFixed(0)}`
          : '';
      console.log(
        [
          pad(sc.name, 18),
          pad(row.policy, 24),
          lpad(pgib(row.value), 11),
          lpad(((100 * row.value) / r.total).toFixed(1), 8),
          lpad(`${(row.value / fifo1).toFixed(2)}x`, 10),
          lpad(`${(row.value / fifo4).toFixed(2)}x`, 10),
          lpad(((100 * row.value) / r.bound).toFixed(1), 8),
          lpad(`${row.saved}/${r.count}`, 10),
          lpad(ms, 12),
          lpad(row.downtime !== undefined ? row.downtime.toFixed(0) : '', 11),
        ].join(' '),
      );
    }
    console.log(
      [
        pad(sc.name, 18),
        pad('upper bound', 24),
        lpad(pgib(r.bound), 11),
        lpad(((100 * r.bound) / r.total).toFixed(1), 8),
      ].join(' '),
    );
    if (verbose) console.log(r.perNode.join('\n'));
  }
  console.log('');
}
