/**
 * Transport throughput benchmark, one run, lab addresses only (bash bench/run.sh transport [--mib N]
 * [--criu-mib N] [--reps N]). The same number of bytes through:
 *   - pipes into a sink on node-b: a raw TCP socket, OpenSSH `ssh -L` (one hop), OpenSSH `-R` + `-L`
 *     (the relay's two hops), ssh2 forwardOut alone (one hop), and spotlift's ssh relay (two hops);
 *   - CRIU: a page-server dump of an N MiB workload node-a -> node-b through spotlift's tcp, tls and ssh
 *     transports (REST -> worker -> SSH -> CRIU; rate = pages / CRIU's memwrite time, as recorded on the
 *     job), and bare CRIU (scripts/lab/bare-migrate.sh) for what the page-server path itself allows.
 * Targets: ssh relay >= 0.9x OpenSSH `ssh -L`; spotlift tcp >= 0.8x the raw socket.
 * `--image-root DIR` puts the page-servers' image files there (spotlift and bare CRIU alike).
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
} from '@spotlift/testing';
import { type OrchestratorProcess, startOrchestratorProcess } from '../support/orchestrator-process.js';
import { median } from '../support/stats.js';
import { CIPHER, opensshL, opensshTwoHop, rawTcp, spotliftRelay, ssh2SingleHop, type PipeResult } from './pipes.js';

const REDIS_PORT = 16389;
const API_PORT = 18091;
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
  // Where both page-servers write pages (e.g. a tmpfs, to take the disk out of the CRIU figures).
  const imageRoot = arg('image-root', '') || undefined;
  if (imageRoot) process.env.SPOTLIFT_IMAGES_DIR = imageRoot; // bare-migrate.sh's image dir
  const bytes = mib * MiB;
  const lab = await labUp({ nodes: 2 });
  const nodes: Record<string, NodeTarget> = Object.fromEntries(lab.nodes.map((n) => [n.id, n]));
  const key = readFileSync(lab.ssh.privateKeyPath);

  const pipes: Array<[string, () => Promise<PipeResult>]> = [
    ['raw TCP socket (node-a -> node-b)', () => rawTcp(bytes)],
    ['OpenSSH ssh -L (1 hop)', () => opensshL(bytes)],
    ['OpenSSH -R + -L (2 hops)', () => opensshTwoHop(bytes)],
    ['ssh2 forwardOut (1 hop)', () => ssh2SingleHop(nodes['node-b']!, key, bytes)],
    ['spotlift ssh relay (2 hops)', () => spotliftRelay(nodes, key, bytes)],
  ];
  const results = new Map<string, number[]>();
  const add = (k: string, v: number) => results.set(k, [...(results.get(k) ?? []), v]);
  for (let i = 0; i < reps; i++) {
    for (const [label, run] of pipes) {
      // One retry: a broken run is reported, not hidden, and does not cost the other figures.
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          const r = await run();
          if (r.bytes !== bytes) throw new Error(`the sink got ${r.bytes} of ${bytes} bytes`);
          add(label, rate(r));
          console.error(`[bench] ${label}: ${rate(r).toFixed(0)} MiB/s`);
          break;
        } catch (error) {
          console.error(`[bench] ${label}: attempt ${attempt} failed: ${(error as Error).message}`);
        }
      }
    }
  }

  await startRedis(REDIS_PORT);
  const collector = new HeartbeatCollector();
  await collector.start();
  const orch = await startOrchestratorProcess({
    name: 'transport',
    redisPort: REDIS_PORT,
    apiPort: API_PORT,
    ...(imageRoot ? { env: { SPOTLIFT_IMAGE_ROOT: imageRoot } } : {}),
  });
  try {
    for (let i = 0; i < reps; i++) {
      for (const t of ['tcp', 'tls', 'ssh']) {
        const v = await criuThroughSpotlift(orch, collector, t, criuMib);
        add(`spotlift ${t} transport (CRIU page-server)`, v);
        console.error(`[bench] spotlift ${t}: ${v.toFixed(0)} MiB/s`);
      }
      const b = await criuBare(collector, criuMib);
      add('bare CRIU page-server (no spotlift)', b);
      console.error(`[bench] bare CRIU: ${b.toFixed(0)} MiB/s`);
    }
  } finally {
    orch.stop();
    await collector.stop();
    await stopRedis(REDIS_PORT);
  }

  const m = (k: string) => median(results.get(k) ?? [NaN]);
  console.log(
    `transport throughput, MiB/s (median of ${reps}); pipes: ${mib} MiB into a sink; CRIU: ${criuMib} MiB workload; ssh cipher ${CIPHER}; images in ${imageRoot ?? 'the default image root'}`,
  );
  const width = Math.max(...[...results.keys()].map((k) => k.length));
  for (const [k, v] of results)
    console.log(`  ${k.padEnd(width)}  ${m(k).toFixed(0).padStart(6)}   runs: ${v.map((x) => x.toFixed(0)).join(' ')}`);
  const ratio = (label: string, a: string, b: string, target?: number) => {
    const r = m(a) / m(b);
    const verdict =
      target === undefined ? '' : r >= target ? `  (target >= ${target}x: met)` : `  (target >= ${target}x: NOT met)`;
    console.log(`  ${label.padEnd(46)} ${r.toFixed(2)}x${verdict}`);
  };
  console.log('ratios');
  ratio('spotlift ssh relay / OpenSSH ssh -L', 'spotlift ssh relay (2 hops)', 'OpenSSH ssh -L (1 hop)', 0.9);
  ratio('spotlift ssh relay / OpenSSH -R + -L (same hops)', 'spotlift ssh relay (2 hops)', 'OpenSSH -R + -L (2 hops)');
  ratio('ssh2 forwardOut / OpenSSH ssh -L (1 hop each)', 'ssh2 forwardOut (1 hop)', 'OpenSSH ssh -L (1 hop)');
  ratio(
    'spotlift tcp transport / raw TCP socket',
    'spotlift tcp transport (CRIU page-server)',
    'raw TCP socket (node-a -> node-b)',
    0.8,
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
    'spotlift ssh / spotlift tcp (CRIU)',
    'spotlift ssh transport (CRIU page-server)',
    'spotlift tcp transport (CRIU page-server)',
  );
  console.log(
    `${readFileSync('/proc/loadavg', 'utf8').trim()} (loadavg), ${lab.nodes.length} lab nodes, 2 cores shared by senders, sshds, relay and sink`,
  );
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
