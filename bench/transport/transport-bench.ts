/**
 * Transport throughput benchmark, one run, lab addresses only (bash bench/run.sh transport [--mib N]
 * [--criu-mib N] [--reps N]). The same number of bytes through:
 *   - pipes into a sink on node-b: a raw TCP socket, OpenSSH `ssh -L` by hand on node-a (one hop), OpenSSH `-R` + `-L`
 *     (the relay's two hops), ssh2 forwardOut alone (one hop), spotlift's ssh transport node to node
 *     (OpenSSH `-L` on node-a, one hop) and relayed by the orchestrator (two hops);
 *   - CRIU: a page-server dump of an N MiB workload node-a -> node-b through spotlift's tcp, tls and ssh
 *     (direct, and relayed: a second orchestrator with SPOTLIFT_SSH_TUNNEL=relay) transports (REST -> worker
 *     -> SSH -> CRIU; rate = pages / CRIU's memwrite time, as recorded on the job), and bare CRIU
 *     (scripts/lab/bare-migrate.sh) for what the page-server path itself allows.
 * Like with like: each ssh figure against the OpenSSH tunnel with the same hops. Targets: ssh >= 0.9x
 * OpenSSH `ssh -L` (the direct mode; one hop each); spotlift tcp >= 0.8x the raw socket.
 * `--image-root DIR` puts the page-servers' image files there (spotlift and bare CRIU alike).
 * `--pipes-only` measures the pipes alone (no CRIU, no orchestrator).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MigrationRecord, NodeTarget, WorkloadRecord } from '@spotlift/domain';
import {
  HeartbeatCollector,
  bareMigrate,
  labUp,
  nodeAddress,
  pidAlive,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  type OrchestratorProcess,
  startBenchOrchestrator,
} from '@spotlift/testing';
import { median } from '../support/stats.js';
import {
  CIPHER,
  opensshL,
  opensshTwoHop,
  rawTcp,
  spotliftDirect,
  spotliftRelay,
  ssh2SingleHop,
  type PipeResult,
} from './pipes.js';

const REDIS_PORT = 16407;
const MiB = 2 ** 20;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const rate = (r: PipeResult) => r.bytes / MiB / r.seconds;

async function launch(collector: HeartbeatCollector, tag: string, mib: number): Promise<{ name: string; pid: number }> {
  const name = `bench-tr-${tag}-${randomBytes(3).toString('hex')}`;
  const pid = await startWorkload('node-a', { name, memMiB: mib, udpPort: collector.port });
  await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 120_000 });
  return { name, pid };
}

/** One migration through spotlift; MiB/s of pages as the job recorded it (CRIU memwrite time). */
async function criuThroughSpotlift(
  orch: OrchestratorProcess,
  collector: HeartbeatCollector,
  transport: string,
  mib: number,
  route?: 'direct' | 'relay',
): Promise<number> {
  const { name, pid } = await launch(collector, transport, mib);
  const w = await orch.call<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });
  let m = await orch.call<MigrationRecord>('POST', '/migrations', {
    workload: w.id,
    destination: 'node-b',
    transport,
  });
  while (!['completed', 'rolled_back', 'failed'].includes(m.state)) {
    await new Promise((r) => setTimeout(r, 100));
    m = await orch.call<MigrationRecord>('GET', `/migrations/${m.id}`);
  }
  for (const p of [pid, m.restoredPid]) if (p && pidAlive(p)) await stopWorkload(p);
  const bps = m.throughput?.pagesBytesPerSec;
  if (m.state !== 'completed' || !bps) throw new Error(`${transport} migration ${m.state}: ${m.error}`);
  // A figure under the wrong label would be worse than none (e.g. ssh relayed where direct was meant).
  if (route && !m.transportRoute?.startsWith(`${route}:`)) throw new Error(`${transport} went ${m.transportRoute}`);
  return bps / MiB;
}

async function criuBare(collector: HeartbeatCollector, mib: number): Promise<number> {
  const { pid } = await launch(collector, 'bare', mib);
  const r = await bareMigrate('node-a', 'node-b', pid);
  for (const p of [pid, r.restoredPid]) if (pidAlive(p)) await stopWorkload(p);
  const pages = r.criu.pagesWritten ?? 0;
  const ms = r.criu.memwriteMs ?? 0;
  if (!pages || !ms) throw new Error('bare CRIU reported no pages or memwrite time');
  return (pages * 4096) / MiB / (ms / 1000);
}

async function main(): Promise<void> {
  const mib = Number(arg('mib', '1024'));
  const criuMib = Number(arg('criu-mib', String(mib)));
  const reps = Number(arg('reps', '1'));
  // Pipes only (seconds, not minutes; no CRIU, no orchestrator).
  const skipCriu = process.argv.includes('--pipes-only');
  // Where both page-servers write pages (e.g. a tmpfs, to take the disk out of the CRIU figures).
  const imageRoot = arg('image-root', '') || undefined;
  if (imageRoot) process.env.SPOTLIFT_IMAGES_DIR = imageRoot; // bare-migrate.sh's image dir
  const bytes = mib * MiB;
  const lab = await labUp({ nodes: 2 });
  const nodes: Record<string, NodeTarget> = Object.fromEntries(lab.nodes.map((n) => [n.id, n]));
  const key = readFileSync(lab.ssh.privateKeyPath);

  // Each figure next to its baseline (same hops), and every other run in reverse order, so that load drifting
  // during a run weighs on both sides of a ratio alike.
  const pipes: Array<[string, () => Promise<PipeResult>]> = [
    ['raw TCP socket (node-a -> node-b)', () => rawTcp(bytes)],
    ['OpenSSH ssh -L on node-a (1 hop)', () => opensshL(bytes)],
    ['spotlift ssh direct (1 hop)', () => spotliftDirect(nodes, key, bytes)],
    ['ssh2 forwardOut (1 hop)', () => ssh2SingleHop(nodes['node-b']!, key, bytes)],
    ['OpenSSH -R + -L (2 hops)', () => opensshTwoHop(bytes)],
    ['spotlift ssh relay (2 hops)', () => spotliftRelay(nodes, key, bytes)],
  ];
  /** Figures by label, one slot per run (undefined: that run failed twice). */
  const results = new Map<string, Array<number | undefined>>();
  /** One figure, MiB/s; one retry: a broken run is reported, not hidden, and does not cost the other figures. */
  const measureInto = async (label: string, rep: number, run: () => Promise<number>) => {
    const slots = results.get(label) ?? Array<number | undefined>(reps).fill(undefined);
    results.set(label, slots);
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        slots[rep] = await run();
        console.error(`[bench] ${label}: ${slots[rep].toFixed(0)} MiB/s`);
        return;
      } catch (error) {
        console.error(`[bench] ${label}: attempt ${attempt} failed: ${(error as Error).message}`);
      }
    }
  };
  for (let i = 0; i < reps; i++) {
    for (const [label, run] of i % 2 ? [...pipes].reverse() : pipes) {
      await measureInto(label, i, async () => {
        const r = await run();
        if (r.bytes !== bytes) throw new Error(`the sink got ${r.bytes} of ${bytes} bytes`);
        return rate(r);
      });
    }
  }
  if (!skipCriu) await criuFigures(criuMib, reps, imageRoot, measureInto);
  report(results, { mib, criuMib, reps, imageRoot, nodes: lab.nodes.length, criu: !skipCriu });
}

/** Real CRIU page-server dumps node-a -> node-b through spotlift (each transport and ssh mode) and bare. */
async function criuFigures(
  criuMib: number,
  reps: number,
  imageRoot: string | undefined,
  measureInto: (label: string, rep: number, run: () => Promise<number>) => Promise<void>,
): Promise<void> {
  await startRedis(REDIS_PORT);
  const collector = new HeartbeatCollector();
  await collector.start();
  const images: Record<string, string> = imageRoot ? { SPOTLIFT_IMAGE_ROOT: imageRoot } : {};
  const orch = await startBenchOrchestrator('transport', REDIS_PORT, images);
  // The same, with the ssh transport always relayed.
  const relayOrch = await startBenchOrchestrator('transport-relay', REDIS_PORT, {
    ...images,
    SPOTLIFT_SSH_TUNNEL: 'relay',
  });
  try {
    for (let i = 0; i < reps; i++) {
      for (const [label, o, t] of [
        ['tcp', orch, 'tcp'],
        ['tls', orch, 'tls'],
        ['ssh direct', orch, 'ssh'],
        ['ssh relay', relayOrch, 'ssh'],
      ] as const) {
        const route = t === 'ssh' ? (o === orch ? 'direct' : 'relay') : undefined;
        await measureInto(`spotlift ${label} transport (CRIU page-server)`, i, () =>
          criuThroughSpotlift(o, collector, t, criuMib, route),
        );
      }
      await measureInto('bare CRIU page-server (no spotlift)', i, () => criuBare(collector, criuMib));
    }
  } finally {
    await orch.kill('SIGTERM');
    await relayOrch.kill('SIGTERM');
    await collector.stop();
    await stopRedis(REDIS_PORT);
  }
}

function report(
  results: Map<string, Array<number | undefined>>,
  run: { mib: number; criuMib: number; reps: number; imageRoot: string | undefined; nodes: number; criu: boolean },
): void {
  const { mib, criuMib, reps, imageRoot } = run;
  const got = (k: string) => (results.get(k) ?? []).filter((v): v is number => v !== undefined);
  const m = (k: string) => (got(k).length ? median(got(k)) : NaN);
  console.log(
    `transport throughput, MiB/s (median of ${reps}); pipes: ${mib} MiB into a sink; ssh cipher ${CIPHER}` +
      (run.criu ? `; CRIU: ${criuMib} MiB workload, images in ${imageRoot ?? 'the default image root'}` : ''),
  );
  const width = Math.max(...[...results.keys()].map((k) => k.length));
  for (const [k, v] of results)
    console.log(
      `  ${k.padEnd(width)}  ${m(k).toFixed(0).padStart(6)}   runs: ${v.map((x) => x?.toFixed(0) ?? 'failed').join(' ')}`,
    );
  /** The median of the per-run ratios (both figures of a run were measured back to back), and each run's. */
  const ratio = (label: string, a: string, b: string, target?: number, paired = true) => {
    if (!paired) {
      // Figures from different parts of the run (pipes first, CRIU later): their medians, not per-run pairs.
      const r = m(a) / m(b);
      const verdict =
        target === undefined || Number.isNaN(r) ? '' : `  (target >= ${target}x: ${r >= target ? 'met' : 'NOT met'})`;
      console.log(`  ${label.padEnd(50)} ${Number.isNaN(r) ? 'n/a' : `${r.toFixed(2)}x`}${verdict}   (of medians)`);
      return;
    }
    const perRun = (results.get(a) ?? [])
      .map((x, i) => (x === undefined ? undefined : x / (results.get(b)?.[i] ?? NaN)))
      .filter((r): r is number => r !== undefined && !Number.isNaN(r));
    if (!perRun.length) {
      console.log(`  ${label.padEnd(50)} n/a (a figure is missing: see the failures above)`);
      return;
    }
    const r = median(perRun);
    const verdict =
      target === undefined ? '' : r >= target ? `  (target >= ${target}x: met)` : `  (target >= ${target}x: NOT met)`;
    console.log(
      `  ${label.padEnd(50)} ${r.toFixed(2)}x${verdict}   runs: ${perRun.map((x) => x.toFixed(2)).join(' ')}`,
    );
  };
  console.log('ratios (median of per-run ratios: both figures measured back to back in each run)');
  ratio(
    'spotlift ssh direct / OpenSSH ssh -L (1 hop each)',
    'spotlift ssh direct (1 hop)',
    'OpenSSH ssh -L on node-a (1 hop)',
    0.9,
  );
  ratio(
    'spotlift ssh relay / OpenSSH -R + -L (2 hops each)',
    'spotlift ssh relay (2 hops)',
    'OpenSSH -R + -L (2 hops)',
  );
  ratio('spotlift ssh relay / OpenSSH ssh -L', 'spotlift ssh relay (2 hops)', 'OpenSSH ssh -L on node-a (1 hop)');
  ratio('ssh2 forwardOut / OpenSSH ssh -L (1 hop each)', 'ssh2 forwardOut (1 hop)', 'OpenSSH ssh -L on node-a (1 hop)');
  if (run.criu) criuRatios(ratio);
  console.log(
    `${readFileSync('/proc/loadavg', 'utf8').trim()} (loadavg), ${run.nodes} lab nodes, 2 cores shared by senders, sshds, relay and sink`,
  );
}

function criuRatios(ratio: (label: string, a: string, b: string, target?: number, paired?: boolean) => void): void {
  ratio(
    'spotlift tcp transport / raw TCP socket',
    'spotlift tcp transport (CRIU page-server)',
    'raw TCP socket (node-a -> node-b)',
    0.8,
    false,
  );
  ratio(
    'spotlift tcp transport / bare CRIU page-server',
    'spotlift tcp transport (CRIU page-server)',
    'bare CRIU page-server (no spotlift)',
  );
  ratio(
    'spotlift tls / spotlift tcp',
    'spotlift tls transport (CRIU page-server)',
    'spotlift tcp transport (CRIU page-server)',
  );
  ratio(
    'spotlift ssh direct / spotlift tcp (CRIU)',
    'spotlift ssh direct transport (CRIU page-server)',
    'spotlift tcp transport (CRIU page-server)',
  );
  ratio(
    'spotlift ssh relay / spotlift tcp (CRIU)',
    'spotlift ssh relay transport (CRIU page-server)',
    'spotlift tcp transport (CRIU page-server)',
  );
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
