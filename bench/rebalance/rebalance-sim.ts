/**
 * Rebalancing benchmark (`bash bench/run.sh rebalance [--seed=N] [--hours=168] [--reserve=0.2] [--pool-reserve=0.2]`):
 * one seeded week of a
 * simulated fleet, run three ways on the same inputs:
 *   - evacuation only: notices are evacuated live, nodes are released only when they happen to empty;
 *   - spotlift: the same, plus live rebalancing every hour (de-risk, spread, consolidate: libs/placement's
 *     planner, with spot nodes never filled beyond what leaves within a notice);
 *   - restart: Karpenter-style consolidation, the same planner's node choices but each move is a restart
 *     (state lost, restart time as downtime), and no de-risk.
 * Hour steps. Workloads come and go (a daily load curve), new ones are placed by a scheduler that is not
 * spotlift (where most memory is free, blind to notices and to what could be evacuated), a node is launched
 * when nothing fits, an empty node is released. Spot pools have different interruption rates and notices:
 * half are AWS-like (120 s), half GCP/Azure-like (30 s); 60 % of interruptions are announced 1-3 h earlier by
 * a rebalance recommendation on the node, and false recommendations come at half the interruption rate. An
 * interrupted node's workloads leave within its notice less the 5 s margin, four at a time over its 500 MiB/s
 * link (1.5 s overhead each wave), most valuable first, to nodes already running (a new instance takes
 * longer than a notice); those that cannot finish in time or find no room are caught (their state is lost).
 * spotlift's planner is told the same evacuation model, its notice reserve sized per pool from the notices it saw
 * (`--pool-reserve`: weighted notices per node-day from which the whole `--reserve` applies; 0: one reserve for
 * every pool). All assumptions, no measurement.
 */
import {
  chooseStrategy,
  planRebalance,
  type EvacuationModel,
  type NoticeSighting,
  type RebalanceNode,
} from '@spotlift/placement';
import { intIn, logNormal, mulberry32, type Rng } from '../fleet/rng.js';

const MIB = 2 ** 20;
const GIB = 2 ** 30;
const LINK = 500 * MIB;
const OVERHEAD_S = 1.5;
const MARGIN_S = 5;
const RESTART_S = 45;
const POOLS = 10;
/** Interruptions per spot node and day, by pool: from calm to hot. */
const POOL_RATE = [0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3];
/** Notice per pool: even pools AWS-like (120 s), odd pools GCP/Azure-like (30 s); calm and hot of both. */
const poolNotice = (pool: number) => (pool % 2 === 0 ? 120 : 30);

type Mode = 'evacuation-only' | 'spotlift' | 'restart';

interface Wl {
  id: string;
  mem: number;
  dirty: number;
  priority: number;
  /** Hour it leaves. */
  until: number;
}
interface Node {
  id: string;
  cap: number;
  pool: number;
  spot: boolean;
  wls: Wl[];
  interruptAt?: number;
}
interface Result {
  mode: string;
  nodeHours: number;
  caught: number;
  /** Caught on nodes with a 30 s notice (the rest on 120 s ones). */
  caught30: number;
  stateLost: number;
  downtimeS: number;
  moves: number;
  evacuated: number;
  interruptions: number;
}

/** A draw that depends only on (seed, key): the three runs see the same notices on the same nodes. */
function keyed(seed: number, key: string): Rng {
  let h = seed >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x9e3779b1) >>> 0;
  return mulberry32(h);
}

const EVACUATION: EvacuationModel = {
  safetyMarginSeconds: MARGIN_S,
  perMigrationOverheadSeconds: OVERHEAD_S,
  maxParallel: 4,
  sourceBandwidthBytesPerSec: LINK,
  fillFraction: 0.85,
};

const used = (n: Node) => n.wls.reduce((s, w) => s + w.mem, 0);
const liveDowntime = (w: Wl) =>
  chooseStrategy({
    memoryBytes: w.mem,
    dirtyRateBytesPerSec: w.dirty,
    bandwidthBytesPerSec: LINK,
    downtimeBudgetSeconds: 1,
    capabilities: { softDirtyOnSource: true, postCopyTrial: 'untested' },
  }).predictedDowntimeSeconds;

function run(
  mode: Mode,
  seed: number,
  hours: number,
  reserve: number,
  fullAt: number,
  restartMovesPerHour = 200,
): Result {
  const r = mulberry32(seed);
  const res: Result = {
    mode,
    nodeHours: 0,
    caught: 0,
    caught30: 0,
    stateLost: 0,
    downtimeS: 0,
    moves: 0,
    evacuated: 0,
    interruptions: 0,
  };
  const nodes: Node[] = [];
  const notices: NoticeSighting[] = [];
  const recommended = new Set<string>();
  let nodeSeq = 0;
  let wlSeq = 0;
  const launch = (): Node => {
    const k = keyed(seed, `launch-${nodeSeq}`);
    const n: Node = {
      id: `n${nodeSeq++}`,
      cap: [16, 32, 64][intIn(k, 0, 2)]! * GIB,
      pool: intIn(k, 0, POOLS - 1),
      spot: k() < 0.85,
      wls: [],
    };
    nodes.push(n);
    return n;
  };
  const roomiest = (w: Wl, among: Node[]): Node | undefined =>
    among
      .filter((n) => used(n) + w.mem <= 0.85 * n.cap)
      .sort((a, b) => b.cap - used(b) - (a.cap - used(a)) || (a.id < b.id ? -1 : 1))[0];
  // The cluster's scheduler (not spotlift): most free memory first, a new node when nothing fits.
  const schedule = (w: Wl): void => void (roomiest(w, nodes) ?? launch()).wls.push(w);
  // An evacuation (spotlift's, in every mode): running nodes only, none with a recommendation if avoidable.
  const evacuateTo = (w: Wl): boolean => {
    const to =
      roomiest(
        w,
        nodes.filter((n) => !recommended.has(n.id)),
      ) ?? roomiest(w, nodes);
    to?.wls.push(w);
    return to !== undefined;
  };
  const newWorkload = (hour: number, rng: Rng): Wl => ({
    id: `w${wlSeq++}`,
    mem: logNormal(rng, 768 * MIB, 1, 64 * MIB, 12 * GIB),
    dirty: logNormal(rng, 8 * MIB, 1, 0.1 * MIB, 200 * MIB),
    priority: intIn(rng, 1, 10),
    until: hour + Math.round(logNormal(rng, 30, 1, 2, 24 * 14)),
  });
  const load = (hour: number) => Math.round(1000 * (0.7 + 0.3 * Math.cos((2 * Math.PI * hour) / 24)));

  for (let i = 0; i < 100; i++) launch();
  for (let i = 0; i < 1000; i++) schedule(newWorkload(0, r));

  for (let hour = 0; hour < hours; hour++) {
    // Departures, then arrivals up to the hour's load (the same draws in every mode: one rng, same order).
    for (const n of nodes) n.wls = n.wls.filter((w) => w.until > hour);
    const count = nodes.reduce((s, n) => s + n.wls.length, 0);
    const arrivals = Math.max(0, load(hour) - count);
    const ar = keyed(seed, `arrivals-${hour}`);
    for (let i = 0; i < arrivals; i++) schedule(newWorkload(hour, ar));

    // Notices: interruptions now (drawn ahead per node and hour), recommendations ahead of 60 % of them.
    for (const n of [...nodes]) {
      if (!n.spot) continue;
      const k = keyed(seed, `${n.id}-${hour}`);
      const rate = POOL_RATE[n.pool]! / 24;
      if (n.interruptAt === undefined && k() < rate) {
        n.interruptAt = hour + intIn(k, 1, 3);
        if (k() < 0.6) {
          recommended.add(n.id);
          notices.push({ nodeId: n.id, spotPool: `pool-${n.pool}`, kind: 'recommendation', at: hour * 3600_000 });
        }
      } else if (k() < rate / 2) {
        recommended.add(n.id);
        notices.push({ nodeId: n.id, spotPool: `pool-${n.pool}`, kind: 'recommendation', at: hour * 3600_000 });
      }
      if (n.interruptAt === hour) {
        res.interruptions++;
        notices.push({ nodeId: n.id, spotPool: `pool-${n.pool}`, kind: 'interruption', at: hour * 3600_000 });
        nodes.splice(nodes.indexOf(n), 1);
        // Four at a time sharing the link (as the evacuation planner runs them), most valuable first; one that
        // would not finish in time, or finds no room, is caught and the next is tried.
        let bytes = 0;
        let started = 0;
        for (const w of [...n.wls].sort((a, b) => b.priority - a.priority || a.mem - b.mem)) {
          const t = (bytes + w.mem) / LINK + Math.ceil((started + 1) / 4) * OVERHEAD_S;
          if (t > poolNotice(n.pool) - MARGIN_S || !evacuateTo(w)) {
            if (process.env.DEBUG_SIM)
              console.log(mode, hour, n.id, poolNotice(n.pool), n.wls.length, Math.round(used(n) / GIB), n.cap / GIB);
            res.caught++;
            if (poolNotice(n.pool) === 30) res.caught30++;
            res.stateLost++;
            continue;
          }
          bytes += w.mem;
          started++;
          res.evacuated++;
          res.downtimeS += liveDowntime(w);
        }
      }
    }

    if (mode !== 'evacuation-only') {
      const view: RebalanceNode[] = nodes.map((n) => ({
        id: n.id,
        state: 'ready',
        criuOk: true,
        freeMemoryBytes: n.cap - used(n),
        memoryCapacityBytes: n.cap,
        cpu: {},
        spotPool: `pool-${n.pool}`,
        lifecycle: n.spot ? 'spot' : 'on-demand',
        ...(n.spot ? { noticeSeconds: poolNotice(n.pool) } : {}),
        labels: {},
        softDirty: true,
        postCopyTrial: 'untested',
        workloads: n.wls.map((w) => ({
          id: w.id,
          memoryBytes: w.mem,
          dirtyRateBytesPerSec: w.dirty,
          priority: w.priority,
        })),
      }));
      const plan = planRebalance({
        now: new Date(hour * 3600_000),
        policies: mode === 'spotlift' ? ['de-risk', 'spread', 'consolidate'] : ['consolidate'],
        nodes: view,
        notices,
        riskWindowSeconds: 6 * 3600,
        budgets: {
          maxConcurrentMoves: 8,
          maxMovesPerHour: mode === 'restart' ? restartMovesPerHour : 200,
          minMoveIntervalSeconds: 3600,
          windows: [],
        },
        history: [],
        bandwidthBytesPerSec: LINK,
        // spotlift knows its evacuations: no node is packed beyond what leaves within its notice (a part of it
        // kept for what the scheduler adds before the next evaluation), and spread relieves one that refilled.
        ...(mode === 'spotlift' ? { evacuation: { ...EVACUATION, reserveFraction: reserve } } : {}),
        // The reserve covers arrivals between two evaluations; it only costs work where an interruption comes
        // meanwhile, so a calm pool keeps less of it than a hot one.
        ...(mode === 'spotlift' && fullAt > 0 ? { poolReserve: { fullAtPerNodeDay: fullAt } } : {}),
        consolidate: { maxNodesPerPlan: 4, targetFraction: 0.85 },
        deRisk: { minRisk: 1 },
        ...(mode === 'restart'
          ? {
              predict: () => ({ strategy: 'restart' as const, downtimeSeconds: RESTART_S, totalSeconds: RESTART_S }),
              scoreThreshold: 0,
            }
          : {}),
        placement: { allowUnverifiedCpu: true, headroomBytes: 0, headroomFraction: 0 },
      });
      for (const m of plan.moves) {
        const from = nodes.find((n) => n.id === m.fromNodeId)!;
        const to = nodes.find((n) => n.id === m.toNodeId)!;
        const w = from.wls.find((x) => x.id === m.workloadId)!;
        from.wls.splice(from.wls.indexOf(w), 1);
        to.wls.push(w);
        res.moves++;
        res.downtimeS += m.predictedDowntimeMs / 1000;
        if (mode === 'restart') res.stateLost++;
      }
    }
    // An empty node is released (every mode: an autoscaler does this much).
    for (const n of [...nodes]) if (!n.wls.length) nodes.splice(nodes.indexOf(n), 1);
    res.nodeHours += nodes.length;
  }
  return res;
}

function main(): void {
  const arg = (name: string, dflt: number) =>
    Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
  const seed = arg('seed', 42);
  const hours = arg('hours', 168);
  const reserve = arg('reserve', 0.2);
  const fullAt = arg('pool-reserve', 0.2);
  const t0 = Date.now();
  const [evac, live, restart] = (['evacuation-only', 'spotlift', 'restart'] as const).map((m) =>
    run(m, seed, hours, reserve, fullAt),
  );
  // Restart-based consolidation held back (fewer moves an hour) until it saves no more node-hours than spotlift:
  // the issue compares downtime at the same node-hours. Node-hours fall as the budget grows: bisect it.
  let lo = 0;
  let hi = 200;
  let same = restart!;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const r = run('restart', seed, hours, reserve, fullAt, mid);
    if (r.nodeHours <= live!.nodeHours) {
      same = r;
      hi = mid;
    } else lo = mid + 1;
  }
  const sameNodeHours = { ...same, mode: `restart, ${lo} moves/h (same node-hours)` };
  const rows = [evac!, live!, restart!, sameNodeHours];
  console.log(
    `rebalance benchmark: seed ${seed}, ${hours} h, 100 nodes and 1,000 workloads at the start, reserve ${reserve}, ` +
      `${fullAt > 0 ? `per pool (whole from ${fullAt} notices per node-day)` : 'one for every pool'} (${Date.now() - t0} ms)`,
  );
  console.log(
    '| run | node-hours | caught by a notice (on 30 s nodes) | state lost | total downtime | rebalancing moves | evacuated | interruptions |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const x of rows)
    console.log(
      `| ${x.mode} | ${x.nodeHours} | ${x.caught} (${x.caught30}) | ${x.stateLost} | ${Math.round(x.downtimeS)} s | ${x.moves} | ${x.evacuated} | ${x.interruptions} |`,
    );
  const saved = 1 - live!.nodeHours / evac!.nodeHours;
  const checks = [
    [`node-hours vs evacuation only: ${(saved * 100).toFixed(1)} % fewer (target >= 20 %)`, saved >= 0.2],
    [
      `caught: ${live!.caught} vs ${evac!.caught} (target fewer, or none where evacuation only catches none)`,
      live!.caught < evac!.caught || live!.caught === 0,
    ],
    [`state lost by rebalancing: ${live!.stateLost - live!.caught} (target 0)`, live!.stateLost === live!.caught],
    [
      `downtime: ${Math.round(live!.downtimeS)} s vs restart-based at the same node-hours ${Math.round(sameNodeHours.downtimeS)} s (${sameNodeHours.nodeHours} node-hours; unbounded: ${Math.round(restart!.downtimeS)} s at ${restart!.nodeHours}) (target lower)`,
      live!.downtimeS < sameNodeHours.downtimeS && sameNodeHours.nodeHours <= live!.nodeHours,
    ],
  ] as const;
  for (const [text, ok] of checks) console.log(`${ok ? 'MET    ' : 'NOT MET'} ${text}`);
}

main();
