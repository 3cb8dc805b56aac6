/**
 * Podman in the lab, end to end, with real Podman 4.3, runc and CRIU 4.2 (no spotlift engine yet: the
 * commands are the typed argvs of libs/engine/src/podman, run over SSH the way the engine will run them).
 * A heartbeat container (the lab image, on node-a only) moves node-a -> node-b: node-b lacks the image, so
 * `image save | image load` sends it first; then `container checkpoint --export` into a FIFO (no archive on
 * the source's disk), streamed over SSH into a file on node-b, and `container restore --import` there. Its
 * counter goes on from where it froze and it runs only on node-b; the parsers read the real outputs. Then the
 * rollback: an export that lands nowhere, and the source restored from the checkpoint Podman kept.
 * No skips: without Podman, runc or a working CRIU it fails.
 *
 *   export SPOTLIFT_LAB_DIR=/work/main/.lab
 *   NODE_OPTIONS=--experimental-vm-modules npx jest test/podman-lab.e2e-spec.ts --selectProjects e2e --runInBand
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  movable,
  parseContainerInspect,
  parseImageLoadOutput,
  parsePodmanCheckpointStats,
  parsePodmanRestoreStats,
  podmanCheckpointArgv,
  podmanImageExistsArgv,
  podmanImageLoadArgv,
  podmanImageSaveArgv,
  podmanInspectArgv,
  podmanMoveFigures,
  podmanRestoreArgv,
  podmanRestoreLocalArgv,
  podmanRmArgv,
  statsOf,
  type ContainerInspection,
} from '@spotlift/engine';
import { shellJoin } from '@spotlift/transport';
import {
  HeartbeatCollector,
  labDir,
  labDown,
  labIsHealthy,
  labUp,
  nodeAddress,
  nodeOfPid,
  type Heartbeat,
} from '@spotlift/testing';

const execFileP = promisify(execFile);
const NAME = `podman-lab-${process.pid}`;
const IMAGE = 'localhost/spotlift-heartbeat:lab';
const MEM_MIB = 64;
const A = nodeAddress('node-a');
const B = nodeAddress('node-b');
/** Where node-b keeps the received archive: its private /srv/data (restore --import needs a regular file). */
const ARCHIVE = `/srv/data/podman-lab/${NAME}.tar`;

const sshArgs = (node: string): string[] => ['-F', join(labDir(), 'ssh', 'config'), node];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** One command line on a node through its sshd (the session has the lab's CONTAINERS_CONF), never throwing. */
async function onNode(node: string, command: string, timeoutMs = 60_000): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileP('ssh', [...sshArgs(node), command], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function mustOnNode(node: string, command: string): Promise<string> {
  const r = await onNode(node, command);
  if (r.code !== 0) throw new Error(`${node}: '${command}' exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

interface Piped {
  bytes: number;
  sha256: string;
  ms: number;
  /** stderr of the sending and the receiving command. */
  fromErr: string;
  toErr: string;
  /** stdout of the receiving command. */
  toOut: string;
}

/**
 * Streams the stdout of FROM_CMD on node FROM into TO_CMD's stdin on node TO, through this process (as the
 * orchestrator's stream will go), counting and hashing the bytes. Rejects if either side fails.
 */
function pipeNodes(from: string, fromCmd: string, to: string, toCmd: string): Promise<Piped> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const src = spawn('ssh', [...sshArgs(from), fromCmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    const dst = spawn('ssh', [...sshArgs(to), toCmd], { stdio: ['pipe', 'pipe', 'pipe'] });
    const hash = createHash('sha256');
    let bytes = 0;
    let fromErr = '';
    let toErr = '';
    let toOut = '';
    src.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    src.stdout.pipe(dst.stdin);
    src.stderr.on('data', (c: Buffer) => (fromErr += c.toString()));
    dst.stderr.on('data', (c: Buffer) => (toErr += c.toString()));
    dst.stdout.on('data', (c: Buffer) => (toOut += c.toString()));
    const codes: Array<number | null> = [];
    const done = (): void => {
      if (codes.length < 2) return;
      const result = { bytes, sha256: hash.digest('hex'), ms: Date.now() - started, fromErr, toErr, toOut };
      if (codes.every((c) => c === 0)) resolve(result);
      else
        reject(
          new Error(`pipe ${from} -> ${to} failed (exit ${codes.join(', ')}): ${fromErr.trim()} | ${toErr.trim()}`),
        );
    };
    src.on('close', (code) => {
      codes.push(code);
      done();
    });
    dst.on('close', (code) => {
      codes.push(code);
      done();
    });
    src.on('error', reject);
    dst.on('error', reject);
  });
}

/**
 * The source's side of the move: the export goes into a FIFO that `cat` drains to stdout (the SSH channel),
 * so no archive is written to node-a's disk. Podman's --print-stats JSON and the proof that the export path
 * was still a FIFO afterwards (not replaced by a regular file) go to stderr, after a marker line.
 */
function checkpointIntoStdout(container: string): string {
  const dir = `/run/spotlift-podman-lab-${NAME}`;
  const fifo = `${dir}/export.fifo`;
  const checkpoint = shellJoin(podmanCheckpointArgv({ container, export: fifo }));
  return [
    'set -u',
    `rm -rf ${dir}; mkdir -m 700 ${dir}; mkfifo ${fifo}`,
    `(${checkpoint} >${dir}/stats 2>${dir}/err; echo $? >${dir}/rc) &`,
    `cat ${fifo}`,
    'wait',
    `rc=$(cat ${dir}/rc)`,
    `[ -p ${fifo} ] && fifo=still-a-fifo || fifo=replaced`,
    `echo "---stats fifo=$fifo" >&2; cat ${dir}/stats >&2; cat ${dir}/err >&2`,
    `rm -rf ${dir}`,
    'exit $rc',
  ].join('\n');
}

async function inspectOn(node: string, container: string): Promise<ContainerInspection | undefined> {
  const r = await onNode(node, shellJoin(podmanInspectArgv(container)));
  // Podman prints [] (exit 125, "no such container") for an unknown one: the parser says undefined.
  return parseContainerInspect(r.stdout);
}

async function cleanNode(node: string): Promise<void> {
  await onNode(node, shellJoin(podmanRmArgv({ container: NAME, force: true, ignoreMissing: true, stopTimeoutS: 0 })));
  await onNode(node, `rm -f ${ARCHIVE}`);
}

describe('lab: Podman checkpoint --export / restore --import between two namespaced nodes', () => {
  let broughtUp = false;
  const collector = new HeartbeatCollector();
  let sourceId = '';

  beforeAll(async () => {
    broughtUp = !(await labIsHealthy());
    await labUp({ nodes: 2 });
    await collector.start();
    await Promise.all([cleanNode('node-a'), cleanNode('node-b')]);
    // node-b must lack the image, as a fresh node does (an earlier run may have sent it there).
    await onNode('node-b', `podman image rm --force -- ${IMAGE}`);
    const run = [
      ...['podman', 'run', '--detach', '--name', NAME, '--network', 'host', IMAGE],
      ...[NAME, String(MEM_MIB), collector.host, String(collector.port), '100'],
    ];
    sourceId = (await mustOnNode('node-a', shellJoin(run))).trim();
    await collector.waitForCount(NAME, 10, { from: A, timeoutMs: 30_000 });
  }, 240_000);

  afterAll(async () => {
    await Promise.all([cleanNode('node-a'), cleanNode('node-b')]);
    await onNode('node-b', `podman image rm --force -- ${IMAGE}`);
    await collector.stop();
    if (broughtUp) await labDown({ ifIdle: true });
  }, 120_000);

  it('runs Podman with runc, each node with its own storage at the standard paths', async () => {
    const fmt = '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphRoot}} {{.Store.RunRoot}}';
    const [a, b] = await Promise.all(
      ['node-a', 'node-b'].map((n) =>
        mustOnNode(n, `podman info --format '${fmt}'; stat -c %d:%i /var/lib/containers`),
      ),
    );
    const [infoA, inodeA] = a!.trim().split('\n');
    const [infoB, inodeB] = b!.trim().split('\n');
    expect(infoA).toBe('runc cgroupfs /var/lib/containers/storage /run/containers/storage');
    expect(infoB).toBe(infoA);
    // same path, different directory: the nodes share no image and no container
    expect(inodeA).not.toBe(inodeB);
  });

  it('inspects the running container on node-a: movable, its main pid in node-a', async () => {
    const c = await inspectOn('node-a', NAME);
    expect(c).toMatchObject({ id: sourceId, name: NAME, state: 'running', runtime: 'runc', networkMode: 'host' });
    expect(c!.image.name).toBe(IMAGE);
    expect(nodeOfPid(c!.mainPid!)).toBe('node-a');
    expect(movable(c!)).toEqual({
      movable: true,
      refusals: [],
      volumesToCarry: [],
      bindsToProvide: [],
      portsToFree: [],
    });
    expect(collector.last(NAME)).toMatchObject({ ok: true, memMiB: MEM_MIB, from: A });
    // and an unknown container is an answer, not an error
    expect(await inspectOn('node-a', `${NAME}-nosuch`)).toBeUndefined();
  });

  it('moves it to node-b: sends the missing image, streams the export, restores; it goes on and runs only there', async () => {
    // node-b lacks the image: exit 1 is "no", anything else would be an error.
    expect((await onNode('node-b', shellJoin(podmanImageExistsArgv(IMAGE)))).code).toBe(1);
    const imageId = (await inspectOn('node-a', NAME))!.image.id;
    const image = await pipeNodes(
      'node-a',
      shellJoin(podmanImageSaveArgv({ image: IMAGE })),
      'node-b',
      shellJoin(podmanImageLoadArgv()),
    );
    expect(parseImageLoadOutput(image.toOut)).toEqual([IMAGE]);
    expect((await onNode('node-b', shellJoin(podmanImageExistsArgv(IMAGE)))).code).toBe(0);
    const idOnB = (await mustOnNode('node-b', `podman image inspect --format '{{.Id}}' -- ${IMAGE}`)).trim();
    expect(idOnB).toBe(imageId);

    // The freeze: checkpoint into a FIFO on node-a, through this process, into a regular file on node-b.
    const frozenFrom = Date.now();
    const archive = await pipeNodes(
      'node-a',
      checkpointIntoStdout(NAME),
      'node-b',
      `mkdir -p ${ARCHIVE.replace(/\/[^/]+$/, '')} && cat > ${ARCHIVE}`,
    );
    const [marker, ...rest] = archive.fromErr.slice(archive.fromErr.indexOf('---stats')).split('\n');
    expect(marker).toBe('---stats fifo=still-a-fifo');
    const ckStats = parsePodmanCheckpointStats(rest.join('\n'));
    const received = (await mustOnNode('node-b', `sha256sum ${ARCHIVE}`)).split(' ')[0];
    expect(received).toBe(archive.sha256);

    const restoreStarted = Date.now();
    const restore = await onNode('node-b', shellJoin(podmanRestoreArgv({ import: ARCHIVE })), 120_000);
    const restoreMs = Date.now() - restoreStarted;
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    const rsStats = parsePodmanRestoreStats(restore.stdout);
    await onNode('node-b', `rm -f ${ARCHIVE}`);

    // Running on node-b, same container (Podman keeps the id with --import), its pid in node-b's namespace.
    const onB = await inspectOn('node-b', NAME);
    expect(onB).toMatchObject({ id: sourceId, state: 'running', running: true });
    expect(nodeOfPid(onB!.mainPid!)).toBe('node-b');
    // node-a holds it checkpointed (exited), not running: the commit point removes it.
    const onA = await inspectOn('node-a', NAME);
    expect(onA).toMatchObject({ id: sourceId, running: false, checkpointed: true });
    expect(movable(onA!).refusals.map((r) => r.code)).toEqual(['not_running']);
    await mustOnNode('node-a', shellJoin(podmanRmArgv({ container: NAME, force: true, ignoreMissing: true })));
    expect(await inspectOn('node-a', NAME)).toBeUndefined();

    const movedAt = Date.now();
    await collector.waitForCount(NAME, 20, { since: movedAt, from: B, timeoutMs: 30_000 });
    const hbs = collector.heartbeats(NAME);
    const lastA = hbs.filter((h) => h.from === A).at(-1)!;
    const firstB: Heartbeat = hbs.find((h) => h.from === B)!;
    // It went on where it froze: the next datagram and the next tick of the same memory.
    expect(firstB.seq).toBe(lastA.seq + 1);
    expect(firstB.counter).toBe(lastA.counter + 1);
    expect(collector.isSeqGapFree(NAME)).toBe(true);
    expect(collector.anyNotOk(NAME)).toBe(false);
    // Only node-b sends from the first heartbeat it sent on.
    expect(collector.onlyFromSince(NAME, B, firstB.at)).toBe(true);
    expect(lastA.at).toBeLessThan(firstB.at);

    // The parsers read the real outputs: CRIU wrote and restored every page of the workload's memory.
    const figures = podmanMoveFigures(ckStats, rsStats, sourceId);
    expect(statsOf(ckStats, sourceId).id).toBe(sourceId);
    expect(figures.pagesWritten).toBeGreaterThan((MEM_MIB * 1024 * 1024) / 4096);
    expect(figures.pagesRestored).toBe(figures.pagesWritten);
    expect(figures.frozenMs).toBeGreaterThan(0);
    expect(figures.frozenMs).toBeLessThanOrEqual(firstB.at - frozenFrom);

    console.log(
      `podman stop-and-copy ${MEM_MIB} MiB: receiver's silence ${firstB.at - lastA.at} ms; ` +
        `checkpoint+stream ${archive.ms} ms (archive ${(archive.bytes / 1048576).toFixed(1)} MiB; podman ${figures.checkpointMs} ms, ` +
        `CRIU frozen ${figures.frozenMs} ms, ${figures.pagesWritten} pages); restore ${restoreMs} ms (podman ${figures.restoreMs} ms, ` +
        `CRIU ${figures.criuRestoreMs} ms); image send ${image.ms} ms, ${(image.bytes / 1048576).toFixed(2)} MiB`,
    );
  }, 240_000);

  it('rolls back where the copy cannot land: the source restores from the checkpoint Podman kept, and goes on', async () => {
    // The container now runs on node-b. Its export goes nowhere (a destination that failed); then the source
    // side's rollback, as the engine will do it before the commit point.
    const before = collector.last(NAME)!;
    expect(before.from).toBe(B);
    const lost = await pipeNodes('node-b', checkpointIntoStdout(NAME), 'node-b', 'cat > /dev/null');
    expect(lost.bytes).toBeGreaterThan(MEM_MIB * 1024 * 1024);
    expect(await inspectOn('node-b', NAME)).toMatchObject({ running: false, checkpointed: true });

    const frozenLast = collector.last(NAME)!;
    const back = await onNode('node-b', shellJoin(podmanRestoreLocalArgv({ container: NAME })), 120_000);
    expect(back.code).toBe(0);
    expect(parsePodmanRestoreStats(back.stdout).containers[0]!.criu.pagesRestored).toBeGreaterThan(
      (MEM_MIB * 1024 * 1024) / 4096,
    );
    const restoredAt = Date.now();
    await collector.waitForCount(NAME, 10, { since: restoredAt, from: B, timeoutMs: 30_000 });
    const next = collector.heartbeats(NAME).find((h) => h.seq > frozenLast.seq)!;
    expect(next.seq).toBe(frozenLast.seq + 1);
    expect(next.counter).toBe(frozenLast.counter + 1);
    expect(collector.isSeqGapFree(NAME)).toBe(true);
    expect(collector.anyNotOk(NAME)).toBe(false);
    expect(collector.onlyFromSince(NAME, B, before.at)).toBe(true);
  }, 240_000);
});
