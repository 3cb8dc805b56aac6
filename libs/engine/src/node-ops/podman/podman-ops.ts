import type { NodeRecord } from '@spotlift/domain';
import type { ArmedStream, DirectRoute, DirectoryStreamer, StreamResult, StreamSeal } from '@spotlift/transport';
import type { ArmedCommand, NodeOps } from '../node-ops.js';
import * as pc from './podman-commands.js';
import { type ContainerInspection, parseContainerInspect } from '../../podman/inspect.js';
import { type PodmanCheckpointStats, parsePodmanCheckpointStats } from '../../podman/stats.js';

/** What the source's checkpoint left in its directory: Podman's stats, its log, and when the command began. */
export interface CheckpointOutcome {
  stats?: PodmanCheckpointStats;
  /** Why the stats could not be read (missing, not Podman's JSON). */
  statsProblem?: string;
  /** Node clock, ns: when the checkpoint command started (the freeze begins a moment later). */
  startNs?: bigint;
  log: string;
}

/**
 * The `podman` kind's operations on nodes, typed: inspect, the runtime check, image copy, the checkpoint
 * streamed into the destination, restore (imported or from the source's kept checkpoint), removal. Runs the
 * commands of podman-commands.ts through NodeOps and the checksummed streamer; decides nothing.
 */
export class PodmanOps {
  constructor(
    private readonly ops: NodeOps,
    private readonly streamer: DirectoryStreamer,
  ) {}

  /** These operations on fenced nodes too: only for removing a lost node's stale copy of a restored container. */
  unfenced(): PodmanOps {
    return new PodmanOps(this.ops.unfenced(), this.streamer);
  }

  /** The container as Podman sees it now on `node`; undefined when Podman does not know it. */
  async inspect(node: NodeRecord, ref: string): Promise<ContainerInspection | undefined> {
    const res = await this.ops.run(node, pc.inspect(ref), 30_000);
    if (res.code !== 0 && res.stdout.trim() === '') {
      if (/no such container/i.test(res.stderr)) return undefined;
      throw new Error(
        `podman container inspect on ${node.id} failed (${res.code}): ${res.stderr.trim().slice(0, 300)}`,
      );
    }
    return parseContainerInspect(res.stdout);
  }

  /** Why `node` cannot checkpoint or restore containers, or undefined when it can (podman, runc, criu check). */
  async runtimeProblem(node: NodeRecord): Promise<string | undefined> {
    const res = await this.ops.run(node, pc.RUNTIME_CHECK, 60_000);
    if (res.code !== 0) return `${node.id}: ${res.stderr.trim().slice(0, 200) || `runtime check exited ${res.code}`}`;
    const runtime = /^RUNTIME (.*)$/m.exec(res.stdout)?.[1]?.trim() ?? '';
    if (runtime !== 'runc') {
      return `${node.id}: Podman's runtime is ${runtime || 'unknown'}, not runc (the one that checkpoints here)`;
    }
    if (!/^CRIU_OK yes$/m.test(res.stdout)) return `${node.id}: criu check fails`;
    return undefined;
  }

  /** Whether `node` has the image (by id); throws when Podman could not answer either way. */
  async hasImage(node: NodeRecord, image: string): Promise<boolean> {
    const res = await this.ops.run(node, pc.imageExists(image), 30_000);
    if (res.code === 0) return true;
    if (res.code === 1) return false;
    throw new Error(`podman image exists on ${node.id} failed (${res.code}): ${res.stderr.trim().slice(0, 200)}`);
  }

  /**
   * `podman image save | podman image load` from `source` to `destination`, checksummed end to end: node to
   * node over `route` when given, else relayed by the orchestrator.
   */
  async sendImage(
    source: NodeRecord,
    destination: NodeRecord,
    image: string,
    dir: string,
    route?: DirectRoute,
  ): Promise<StreamResult> {
    const receive = { dir, unpack: pc.imageLoad(`${dir}/image-load.out`), what: `image ${image}` };
    const armed = route
      ? await this.streamer.direct.armPipe(source, pc.imageSave(image), destination, receive, route)
      : await this.streamer.armPipe(source, pc.imageSave(image), destination, receive);
    return armed.start();
  }

  /** What the pair lacks to stream node to node (tools), or undefined when it has everything. */
  directProblem(source: NodeRecord, destination: NodeRecord, tls: boolean): Promise<string | undefined> {
    return this.streamer.direct.problem(source, destination, tls);
  }

  /**
   * The checkpoint of `container` on `source`, streamed into `archive` on `destination`, with both channels
   * open now and nothing run until start(): the freeze begins when it starts. The archive is a regular file
   * there (restore --import needs one). Node to node over `route` (its listener is up when this resolves),
   * else relayed by the orchestrator.
   */
  armCheckpoint(
    source: NodeRecord,
    sourceDir: string,
    container: string,
    destination: NodeRecord,
    archive: string,
    timeoutMs: number,
    round: pc.CheckpointRound = 'final',
    route?: DirectRoute,
    /** An encrypted checkpoint's: the orchestrator encrypts the archive it relays (never on a direct route). */
    seal?: StreamSeal,
  ): Promise<ArmedStream> {
    const send = pc.checkpointToStdout(container, sourceDir, timeoutMs / 1000, round);
    const receive = {
      dir: archive.slice(0, archive.lastIndexOf('/')) || '/',
      unpack: pc.receiveArchive(archive),
      what: `checkpoint archive of ${container}`,
      ...(seal ? { seal } : {}),
    };
    if (seal && route) throw new Error('an encrypted archive is relayed by the orchestrator, not sent direct');
    return route
      ? this.streamer.direct.armPipe(source, send, destination, receive, route)
      : this.streamer.armPipe(source, send, destination, receive);
  }

  /** What the checkpoint left on the source (read after it ended, whether it succeeded or not). */
  async checkpointOutcome(source: NodeRecord, sourceDir: string): Promise<CheckpointOutcome> {
    const f = pc.CHECKPOINT_FILES;
    const [stats, start, log] = await Promise.all([
      this.ops.readFile(source, `${sourceDir}/${f.stats}`).catch(() => undefined),
      this.ops.readFile(source, `${sourceDir}/${f.start}`).catch(() => undefined),
      this.ops.tail(source, `${sourceDir}/${f.log}`, 60).catch(() => ''),
    ]);
    const out: CheckpointOutcome = { log };
    const startText = start?.toString('utf8').trim();
    if (startText && /^\d+$/.test(startText)) out.startNs = BigInt(startText);
    if (!stats?.length) out.statsProblem = `${f.stats} is missing on ${source.id}`;
    else {
      try {
        out.stats = parsePodmanCheckpointStats(stats.toString('utf8'));
      } catch (error) {
        out.statsProblem = (error as Error).message;
      }
    }
    return out;
  }

  /**
   * `restore --import` with its channel open now; fire() runs it (stats JSON and node times on stdout).
   * `previous`: the pre-checkpoint archive a `with-previous` checkpoint needs (`--import-previous`).
   */
  armRestoreImport(
    destination: NodeRecord,
    archive: string,
    timeoutMs: number,
    previous?: string,
  ): Promise<ArmedCommand> {
    return this.ops.armTimed(destination, pc.restoreImport(archive, timeoutMs / 1000, previous), timeoutMs);
  }

  /** Restores the source's container from the checkpoint Podman kept; true when Podman said so. */
  async restoreLocal(node: NodeRecord, container: string, timeoutMs: number): Promise<{ ok: boolean; error: string }> {
    const res = await this.ops.run(node, pc.restoreLocal(container, timeoutMs / 1000), timeoutMs + 15_000);
    return { ok: res.code === 0, error: res.stderr.trim().slice(0, 400) };
  }

  /** Removes the container on `node` (running or not); true once Podman no longer knows it. */
  async remove(node: NodeRecord, container: string): Promise<boolean> {
    await this.ops.run(node, pc.remove(container), 60_000);
    return (await this.inspect(node, container)) === undefined;
  }

  /** True once no Podman checkpoint or restore naming `path` runs on `node` (waits up to `timeoutMs`). */
  async waitIdle(node: NodeRecord, path: string, timeoutMs: number): Promise<boolean> {
    const res = await this.ops.run(node, pc.waitPodmanIdle(path, timeoutMs / 1000), timeoutMs + 15_000);
    if (res.code !== 0 && !/^PODMAN_IDLE no$/m.test(res.stdout)) {
      throw new Error(
        `checking for Podman commands on ${node.id} failed (${res.code}): ${res.stderr.trim().slice(0, 200)}`,
      );
    }
    return res.code === 0;
  }

  /** Which of the named volumes `node` has already. */
  async volumesPresent(node: NodeRecord, names: readonly string[]): Promise<string[]> {
    if (!names.length) return [];
    const res = await this.ops.run(node, pc.volumesPresent(names), 30_000);
    return [...res.stdout.matchAll(/^VOLUME (\S+)$/gm)].map((m) => m[1]!);
  }

  /** Removes named volumes; true when Podman did (or none were asked for). */
  async removeVolumes(node: NodeRecord, names: readonly string[]): Promise<boolean> {
    if (!names.length) return true;
    return (await this.ops.run(node, pc.removeVolumes(names), 60_000)).code === 0;
  }

  /** Which of `ports` something listens on (or has bound) on `node`. */
  async portsInUse(node: NodeRecord, ports: readonly number[]): Promise<number[]> {
    if (!ports.length) return [];
    const res = await this.ops.run(node, pc.portsInUse(ports), 15_000);
    return [...res.stdout.matchAll(/^LISTEN (\d+)$/gm)].map((m) => Number(m[1]));
  }

  // Checkpoints to a storage node (CheckpointFlow, kind podman): the image and the archive as files there.

  /** `podman image save` on `source` into the file `path` on `storage`, checksummed end to end. */
  async storeImage(source: NodeRecord, image: string, storage: NodeRecord, path: string): Promise<StreamResult> {
    const armed = await this.streamer.armPipe(source, pc.imageSave(image), storage, {
      dir: path.slice(0, path.lastIndexOf('/')) || '/',
      unpack: pc.receiveArchive(path),
      what: `image ${image}`,
    });
    return armed.start();
  }

  /** The stored `image.tar` at `path` on `storage` loaded into `destination`'s Podman (`dir`: its work dir). */
  async loadStoredImage(
    storage: NodeRecord,
    path: string,
    destination: NodeRecord,
    dir: string,
  ): Promise<StreamResult> {
    const armed = await this.streamer.armPipe(storage, pc.sendStoredFile(path), destination, {
      dir,
      unpack: pc.imageLoad(`${dir}/image-load.out`),
      what: `stored image ${path}`,
    });
    return armed.start();
  }

  /** The stored archive at `path` on `storage` copied into the regular file `archive` on `destination`. */
  async copyStoredArchive(
    storage: NodeRecord,
    path: string,
    destination: NodeRecord,
    archive: string,
  ): Promise<StreamResult> {
    const armed = await this.streamer.armPipe(storage, pc.sendStoredFile(path), destination, {
      dir: archive.slice(0, archive.lastIndexOf('/')) || '/',
      unpack: pc.receiveArchive(archive),
      what: `stored checkpoint archive ${path}`,
    });
    return armed.start();
  }
}
