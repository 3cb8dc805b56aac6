/**
 * A Podman container's stop-and-copy through spotlift (REST -> queue -> worker -> SSH -> Podman/CRIU) vs the
 * bare Podman sequence by hand (checkpoint --export into a FIFO on node-a, the archive through this process
 * into a file on node-b, restore --import there), same machine, same run, alternating, for the same 256 MiB
 * heartbeat container. Both are measured the same way: the longest silence the container's own heartbeats
 * showed (100 ms ticks), and the freeze to running on the nodes (spotlift's downtime; by hand, the checkpoint
 * command's start to restore's end, on this process's clock). Also the time to send the missing image
 * (spotlift's first run, node-b without it) against `podman image save | load` by hand.
 *
 * spotlift's run uses the migration's transport (`--transport`, tls by default, as POST /migrations): the
 * archive goes node to node over it where the pair allows, else through the orchestrator; the route is printed.
 *
 *   bash bench/run.sh container [--reps N] [--mib 256] [--transport tls|tcp|ssh]
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  HeartbeatCollector,
  labDir,
  labUp,
  nodeAddress,
  type OrchestratorProcess,
  startBenchOrchestrator,
  startRedis,
  stopRedis,
} from '@spotlift/testing';
import { median } from '../support/stats.js';

const REDIS_PORT = 6461;
const IMAGE = 'localhost/spotlift-heartbeat:lab';
const execFileP = promisify(execFile);
type Measured = { downtimeMs: number; gapMs: number };

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const ssh = (node: string) => ['-F', join(labDir(), 'ssh', 'config'), node];

async function on(node: string, command: string): Promise<string> {
  const { stdout } = await execFileP('ssh', [...ssh(node), command], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** FROM's stdout into TO's stdin through this process (as spotlift's relay goes); resolves when both ended. */
function pipe(from: string, fromCmd: string, to: string, toCmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const src = spawn('ssh', [...ssh(from), fromCmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    const dst = spawn('ssh', [...ssh(to), toCmd], { stdio: ['pipe', 'ignore', 'inherit'] });
    src.stdout.pipe(dst.stdin);
    let left = 2;
    const done = (code: number | null) => {
      if (code !== 0) reject(new Error(`pipe ${from} -> ${to} failed (${code})`));
      else if (--left === 0) resolve();
    };
    src.on('close', done);
    dst.on('close', done);
  });
}

async function startContainer(collector: HeartbeatCollector, name: string, mib: number): Promise<void> {
  await on(
    'node-a',
    `podman run --detach --name ${name} --network host ${IMAGE} ${name} ${mib} ${collector.host} ${collector.port} 100`,
  );
  await collector.waitForCount(name, 5, { from: nodeAddress('node-a'), timeoutMs: 60_000 });
}

async function finish(collector: HeartbeatCollector, name: string, since: number): Promise<number> {
  await collector.waitForCount(name, 3, { from: nodeAddress('node-b'), since: Date.now(), timeoutMs: 30_000 });
  const gap = collector.maxGap(name, since - 1_000).gapMs;
  await on('node-b', `podman rm --force --time 0 ${name}`);
  return gap;
}

async function viaSpotlift(orch: OrchestratorProcess, collector: HeartbeatCollector, mib: number, transport: string) {
  const name = `bench-ct-s-${randomBytes(3).toString('hex')}`;
  await startContainer(collector, name, mib);
  const w = await orch.call<WorkloadRecord>('POST', '/workloads', { node: 'node-a', kind: 'podman', container: name });
  const since = Date.now();
  let m = await orch.call<MigrationRecord>('POST', '/migrations', { workload: w.id, destination: 'node-b', transport });
  while (!['completed', 'rolled_back', 'failed', 'cancelled'].includes(m.state)) {
    await new Promise((r) => setTimeout(r, 100));
    m = await orch.call<MigrationRecord>('GET', `/migrations/${m.id}`);
  }
  if (m.state !== 'completed' || m.downtimeMs === undefined) {
    for (const node of ['node-a', 'node-b']) await on(node, `podman rm --force --ignore --time 0 ${name}`);
    throw new Error(`migration ${m.state}: ${m.error}`);
  }
  return {
    downtimeMs: m.downtimeMs,
    gapMs: await finish(collector, name, since),
    image: m.container?.image,
    route: m.container?.route,
  };
}

async function byHand(collector: HeartbeatCollector, mib: number): Promise<Measured> {
  const name = `bench-ct-h-${randomBytes(3).toString('hex')}`;
  await startContainer(collector, name, mib);
  const dir = `/srv/data/bench-${name}`;
  await on('node-a', `mkdir -p ${dir} && mkfifo ${dir}/export.fifo`);
  await on('node-b', `mkdir -p ${dir}`);
  const since = Date.now();
  const started = process.hrtime.bigint();
  await pipe(
    'node-a',
    `(podman container checkpoint --export ${dir}/export.fifo --compress none --tcp-established --file-locks -- ${name} >/dev/null &) ; timeout 120 cat ${dir}/export.fifo`,
    'node-b',
    `cat > ${dir}/ck.tar`,
  );
  await on('node-b', `podman container restore --import ${dir}/ck.tar --tcp-established --file-locks >/dev/null`);
  const downtimeMs = Number(process.hrtime.bigint() - started) / 1e6;
  await on('node-a', `podman rm --force --time 0 ${name}; rm -rf ${dir}`);
  await on('node-b', `rm -rf ${dir}`);
  return { downtimeMs, gapMs: await finish(collector, name, since) };
}

async function main(): Promise<void> {
  const reps = Number(arg('reps', '3'));
  const mib = Number(arg('mib', '256'));
  const transport = arg('transport', 'tls');
  let route = '';
  await labUp({ nodes: 2 });
  await startRedis(REDIS_PORT);
  const collector = new HeartbeatCollector();
  await collector.start();
  const orch = await startBenchOrchestrator('container', REDIS_PORT);
  const s: Measured[] = [];
  const h: Measured[] = [];
  let imageMs = 0;
  let imageBytes = 0;
  let handImageMs = 0;
  try {
    // The image by hand first, then removed again: spotlift's first run must send it itself.
    await on('node-b', `podman image rm --force -- ${IMAGE} >/dev/null 2>&1; true`);
    const t0 = Date.now();
    await pipe('node-a', `podman image save -- ${IMAGE}`, 'node-b', 'podman image load >/dev/null');
    handImageMs = Date.now() - t0;
    await on('node-b', `podman image rm --force -- ${IMAGE} >/dev/null`);
    for (let i = 0; i < reps; i++) {
      // Alternate the order so neither side always runs on a warmer machine (spotlift first: it sends the image).
      const first = await viaSpotlift(orch, collector, mib, transport);
      route = first.route ?? route;
      if (first.image?.sent) ({ durationMs: imageMs = 0, bytes: imageBytes = 0 } = first.image);
      s.push(first);
      h.push(await byHand(collector, mib));
      console.error(`[bench] rep ${i + 1}/${reps} done`);
    }
  } finally {
    await orch.kill('SIGTERM');
    await collector.stop();
    await stopRedis(REDIS_PORT);
  }
  const sd = median(s.map((x) => x.downtimeMs));
  const hd = median(h.map((x) => x.downtimeMs));
  const sg = median(s.map((x) => x.gapMs));
  const hg = median(h.map((x) => x.gapMs));
  console.log(
    `Podman stop-and-copy of a ${mib} MiB container, spotlift vs the bare Podman sequence (medians of ${reps})`,
  );
  console.log(
    `  freeze to running:     spotlift ${sd.toFixed(0)} ms, by hand ${hd.toFixed(0)} ms, ratio ${(sd / hd).toFixed(3)}x`,
  );
  console.log(
    `  heartbeat silence:     spotlift ${sg.toFixed(0)} ms, by hand ${hg.toFixed(0)} ms, ratio ${(sg / hg).toFixed(3)}x`,
  );
  console.log(
    `  runs (downtime ms):    spotlift ${s.map((x) => x.downtimeMs.toFixed(0)).join(' ')} | by hand ${h.map((x) => x.downtimeMs.toFixed(0)).join(' ')}`,
  );
  console.log(
    `  missing image sent:    spotlift ${imageMs} ms (${(imageBytes / 1048576).toFixed(2)} MiB, before the freeze), by hand ${handImageMs} ms`,
  );
  console.log(`  spotlift's archive route (${transport}): ${route}`);
  console.log(`  ${readFileSync('/proc/loadavg', 'utf8').trim()} (loadavg)`);
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
