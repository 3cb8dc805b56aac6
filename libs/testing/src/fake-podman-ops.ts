/**
 * A fake of the `podman` kind's node operations (libs/engine node-ops/podman PodmanOps) for unit tests of the
 * registration and of the container move: nodes hold containers and images as data, every operation answers
 * from them and is recorded, and `fail` makes one operation fail the way the real one does (a checkpoint that
 * stops the container and then breaks, a restore Podman refuses). What the commands are is checked in the
 * layer's golden table and in the lab (test/containers.e2e-spec.ts).
 */
import type { NodeRecord } from '@spotlift/domain';
import type { ArmedCommand, ContainerInspection, PodmanOps, TimedResult } from '@spotlift/engine';
import type { DirectRoute } from '@spotlift/transport';

export interface FakePodmanNode {
  containers?: ContainerInspection[];
  /** Image ids the node has. */
  images?: string[];
  /** What runtimeProblem answers (undefined: podman + runc + criu are fine). */
  runtimeProblem?: string;
  portsInUse?: number[];
  /** Named volumes the node has. */
  volumes?: string[];
  unreachable?: boolean;
  /** What directProblem answers for a pair with this destination (a missing tool). */
  directProblem?: string;
}

/** Operations that can be made to fail, and how. */
export interface FakePodmanFailures {
  /** The checkpoint fails before stopping the container (CRIU refused): it keeps running. */
  checkpointBeforeFreeze?: string;
  /** The checkpoint stopped the container, then the stream broke (the destination went away). */
  checkpointAfterFreeze?: string;
  /** restore --import fails on the destination (a name taken...), leaving a created container there. */
  restore?: string;
  /** restore --import says it worked, but the container is not running afterwards. */
  restoredNotRunning?: boolean;
  /** Removing a container fails on these nodes (it stays as it was). */
  removeOn?: string[];
  /**
   * Removing a container on these nodes throws, once per entry, before anything ran (what the qemu lab's
   * dropbear did once at a commit: it refused the exec request); the next call works.
   */
  removeRefusedOnce?: string[];
  /** The source's restore from its kept checkpoint fails. */
  restoreLocal?: string;
  /** Storing the image on the storage node fails (before any freeze). */
  storeImage?: string;
  /** A pre-checkpoint fails (CRIU's pre-dump aborted): the container keeps running, as Podman leaves it. */
  preCheckpoint?: string;
  /** A direct route's listener does not come up when the archive's stream is armed (before the freeze). */
  directListenerDown?: string;
  /** The direct image stream fails (before the freeze). */
  directImage?: string;
  /**
   * The direct archive stream fails after the container was stopped: its listener died before the sender
   * connected (nothing arrived), the stream was cut half-way (a partial archive arrived), or all of it arrived
   * but the two ends' sha256 differ (the archive file is complete, and wrong).
   */
  directStream?: 'listener-died' | 'cut' | 'checksum';
}

const HEX = (n: number) => n.toString(16).padStart(64, '0');

/** A running, movable container (Podman 4.3's inspection as parseContainerInspect returns it). */
export function aContainer(over: Partial<ContainerInspection> = {}): ContainerInspection {
  return {
    id: HEX(0xc0ffee),
    name: 'web',
    state: 'running',
    rawState: 'running',
    running: true,
    paused: false,
    mainPid: 5100,
    conmonPid: 5090,
    checkpointed: false,
    image: { name: 'localhost/spotlift-heartbeat:lab', id: HEX(0x1a6e) },
    runtime: 'runc',
    isInfra: false,
    privileged: false,
    volumes: [],
    binds: [],
    tmpfs: [],
    otherMounts: [],
    devices: [],
    networkMode: 'host',
    ports: [],
    dependencies: [],
    ...over,
  };
}

export class FakePodmanOps {
  readonly calls: string[] = [];
  fail: FakePodmanFailures = {};
  private nextPid = 7000;

  constructor(readonly nodes: Record<string, FakePodmanNode> = {}) {}

  asPodmanOps(): PodmanOps {
    return this as unknown as PodmanOps;
  }

  /** The container with `id` on `node` now (a copy), if any. */
  container(node: string, id: string): ContainerInspection | undefined {
    const c = this.node(node).containers?.find((x) => x.id === id || x.name === id);
    return c ? { ...c } : undefined;
  }

  inspect(node: NodeRecord, ref: string): Promise<ContainerInspection | undefined> {
    return this.answer('inspect', node, [ref.slice(0, 12)], () => this.container(node.id, ref));
  }

  runtimeProblem(node: NodeRecord): Promise<string | undefined> {
    return this.answer('runtimeProblem', node, [], (n) => n.runtimeProblem);
  }

  hasImage(node: NodeRecord, image: string): Promise<boolean> {
    return this.answer('hasImage', node, [image.slice(0, 12)], (n) => (n.images ?? []).includes(image));
  }

  /** How each stream went: `image|pre|archive direct|relay`; the direct routes as given. */
  readonly routes: string[] = [];
  readonly directRoutes: DirectRoute[] = [];

  directProblem(_source: NodeRecord, destination: NodeRecord): Promise<string | undefined> {
    return this.answer('directProblem', destination, [], (n) => n.directProblem);
  }

  sendImage(source: NodeRecord, destination: NodeRecord, image: string, _dir: string, route?: DirectRoute) {
    return this.answer('sendImage', destination, [source.id, image], () => {
      this.routes.push(`image ${route ? 'direct' : 'relay'}`);
      if (route) this.directRoutes.push(route);
      if (route && this.fail.directImage) throw new Error(this.fail.directImage);
      const c = this.node(source.id).containers?.find((x) => x.image.name === image || x.image.id === image);
      const dst = this.node(destination.id);
      dst.images = [...(dst.images ?? []), c?.image.id ?? image];
      return { bytes: 2_000_000, sha256: 'f'.repeat(64), durationMs: 240 };
    });
  }

  /** Partial or corrupt archives a failed direct stream left: `node:path`. */
  readonly leftovers: string[] = [];

  armCheckpoint(
    source: NodeRecord,
    dir: string,
    id: string,
    destination: NodeRecord,
    archive: string,
    _timeoutMs?: number,
    round: 'final' | 'pre' | 'with-previous' | 'leave-running' = 'final',
    route?: DirectRoute,
  ) {
    if (route && this.fail.directListenerDown) {
      this.calls.push(`armCheckpoint ${source.id}:${id.slice(0, 12)},${destination.id}`);
      return Promise.reject(new Error(this.fail.directListenerDown));
    }
    if (round === 'pre') return this.armPreCheckpoint(source, dir, id, destination, archive, route);
    const args = [id.slice(0, 12), destination.id, ...(round === 'final' ? [] : [round])];
    return this.answer('armCheckpoint', source, args, () => ({
      start: async () => {
        this.routes.push(`archive ${route ? 'direct' : 'relay'}`);
        if (route) this.directRoutes.push(route);
        await Promise.resolve(); // answers come later, as the stream's would
        this.calls.push(`checkpoint ${source.id} ${id.slice(0, 12)}${round === 'final' ? '' : ` ${round}`}`);
        if (this.fail.checkpointBeforeFreeze) throw new Error(this.fail.checkpointBeforeFreeze);
        const c = this.node(source.id).containers?.find((x) => x.id === id);
        if (!c) throw new Error(`no container ${id}`);
        if (round === 'leave-running') {
          if (this.fail.checkpointAfterFreeze) throw new Error(this.fail.checkpointAfterFreeze);
          this.archives.set(`${destination.id}:${archive}`, {
            ...c,
            running: false,
            state: 'exited',
            rawState: 'exited',
          });
          return { bytes: 300_000_000, sha256: 'a'.repeat(64), durationMs: 900 };
        }
        // Podman: --with-previous without a pre-checkpoint of this container fails before stopping it
        if (round === 'with-previous' && !this.preCheckpointed.has(`${source.id}:${id}`)) {
          throw new Error('no pre-checkpoint images for --with-previous');
        }
        Object.assign(c, { running: false, checkpointed: true, state: 'exited', rawState: 'exited' });
        delete c.mainPid;
        if (this.fail.checkpointAfterFreeze) throw new Error(this.fail.checkpointAfterFreeze);
        const broke = route ? this.fail.directStream : undefined;
        if (broke) {
          if (broke !== 'listener-died') this.leftovers.push(`${destination.id}:${archive}`);
          throw new Error(
            {
              'listener-died': `checkpoint archive: receiving failed (1): the listener on port ${route!.listen.port} failed (143)`,
              cut: 'checkpoint archive: sending failed (112): the connection broke (1)',
              checksum: `checkpoint archive: checksum mismatch on ${destination.id}: sent ${'a'.repeat(64)}, received ${'b'.repeat(64)}`,
            }[broke],
          );
        }
        this.archives.set(`${destination.id}:${archive}`, { ...c });
        if (round === 'with-previous') this.withPrevious.add(`${destination.id}:${archive}`);
        const bytes = round === 'with-previous' ? 20_000_000 : 300_000_000;
        return { bytes, sha256: 'a'.repeat(64), durationMs: 900 };
      },
      cancel: () => Promise.resolve(),
    }));
  }

  /** Containers (`node:id`) with a pre-checkpoint, and the pre-checkpoint archives received (`node:path`). */
  readonly preCheckpointed = new Set<string>();
  readonly preArchives = new Set<string>();
  /** Final archives that need their pre-checkpoint at restore (`node:path`). */
  readonly withPrevious = new Set<string>();

  private armPreCheckpoint(
    source: NodeRecord,
    dir: string,
    id: string,
    destination: NodeRecord,
    archive: string,
    route?: DirectRoute,
  ) {
    return this.answer('armCheckpoint', source, [id.slice(0, 12), destination.id, 'pre'], () => ({
      start: async () => {
        this.routes.push(`pre ${route ? 'direct' : 'relay'}`);
        if (route) this.directRoutes.push(route);
        await Promise.resolve();
        this.calls.push(`preCheckpoint ${source.id} ${id.slice(0, 12)} ${dir}`);
        const c = this.node(source.id).containers?.find((x) => x.id === id);
        if (!c?.running) throw new Error(`container ${id} is not running`);
        if (this.fail.preCheckpoint) throw new Error(this.fail.preCheckpoint);
        this.preCheckpointed.add(`${source.id}:${id}`);
        this.preArchives.add(`${destination.id}:${archive}`);
        return { bytes: 280_000_000, sha256: 'b'.repeat(64), durationMs: 14_000 };
      },
      cancel: () => Promise.resolve(),
    }));
  }

  /** Image files stored (`node:path` -> image id), as storeImage wrote them. */
  readonly storedImages = new Map<string, string>();

  storeImage(source: NodeRecord, image: string, storage: NodeRecord, path: string) {
    return this.answer('storeImage', storage, [source.id, image], () => {
      if (this.fail.storeImage) throw new Error(this.fail.storeImage);
      const c = this.node(source.id).containers?.find((x) => x.image.name === image || x.image.id === image);
      this.storedImages.set(`${storage.id}:${path}`, c?.image.id ?? image);
      return { bytes: 2_000_000, sha256: 'e'.repeat(64), durationMs: 200 };
    });
  }

  loadStoredImage(storage: NodeRecord, path: string, destination: NodeRecord) {
    return this.answer('loadStoredImage', destination, [storage.id], () => {
      const image = this.storedImages.get(`${storage.id}:${path}`);
      if (!image) throw new Error(`no stored image ${path} on ${storage.id}`);
      const dst = this.node(destination.id);
      dst.images = [...(dst.images ?? []), image];
      return { bytes: 2_000_000, sha256: 'e'.repeat(64), durationMs: 200 };
    });
  }

  copyStoredArchive(storage: NodeRecord, path: string, destination: NodeRecord, archive: string) {
    return this.answer('copyStoredArchive', destination, [storage.id], () => {
      const c = this.archives.get(`${storage.id}:${path}`);
      if (!c) throw new Error(`no stored archive ${path} on ${storage.id}`);
      this.archives.set(`${destination.id}:${archive}`, { ...c });
      return { bytes: 300_000_000, sha256: 'a'.repeat(64), durationMs: 900 };
    });
  }

  /** Archives received: `node:path` -> the container as it was checkpointed. */
  readonly archives = new Map<string, ContainerInspection>();

  checkpointOutcome(source: NodeRecord, dir = '') {
    // a pre-checkpoint round's directory (container-pre-copy.ts: <sourceDir>/pre-N): every page, no freeze
    const pre = /\/pre-\d+$/.test(dir);
    return this.answer('checkpointOutcome', source, pre ? [dir] : [], () => ({
      startNs: 1_000_000_000_000n,
      log: (pre ? this.fail.preCheckpoint : this.fail.checkpointBeforeFreeze) ?? '',
      stats: {
        podmanUs: 1_142_681,
        containers: [...this.archives.values(), ...(this.node(source.id).containers ?? [])].map((c) => ({
          id: c.id,
          runtimeUs: 292_273,
          criu: {
            freezingTimeUs: 1326,
            frozenTimeUs: 826_120,
            memdumpTimeUs: 6431,
            memwriteTimeUs: 5009,
            pagesScanned: 70_000,
            // the final checkpoint after a pre-checkpoint writes the dirty pages only
            pagesSkippedParent: !pre && this.preCheckpointed.has(`${source.id}:${c.id}`) ? 62_000 : 0,
            pagesWritten: pre ? 68_000 : this.preCheckpointed.has(`${source.id}:${c.id}`) ? 4_000 : 66_000,
          },
        })),
      },
    }));
  }

  armRestoreImport(
    destination: NodeRecord,
    archive: string,
    _timeoutMs?: number,
    previous?: string,
  ): Promise<ArmedCommand> {
    const args = previous === undefined ? [archive] : [archive, previous];
    return this.answer('armRestoreImport', destination, args, () => ({
      fire: async (): Promise<TimedResult> => {
        await Promise.resolve();
        this.calls.push(`restoreImport ${destination.id}`);
        const c = this.archives.get(`${destination.id}:${archive}`);
        const dst = this.node(destination.id);
        if (!c) return { code: 125, stdout: '', stderr: `no archive ${archive}` };
        // a --with-previous archive restores only with its pre-checkpoint (--import-previous) next to it
        if (this.withPrevious.has(`${destination.id}:${archive}`)) {
          if (previous === undefined || !this.preArchives.has(`${destination.id}:${previous}`)) {
            return { code: 125, stdout: '', stderr: 'the checkpoint needs its pre-checkpoint (--import-previous)' };
          }
        }
        if (this.fail.restore) {
          // Podman created the container before CRIU failed: a half-restored copy is left behind.
          dst.containers = [...(dst.containers ?? []), { ...c, state: 'created', rawState: 'created' }];
          return { code: 125, stdout: '', stderr: this.fail.restore };
        }
        dst.volumes = [...(dst.volumes ?? []), ...c.volumes.map((v) => v.name)];
        const running = !this.fail.restoredNotRunning;
        dst.containers = [
          ...(dst.containers ?? []),
          {
            ...c,
            running,
            checkpointed: false,
            state: running ? 'running' : 'exited',
            rawState: running ? 'running' : 'exited',
            ...(running ? { mainPid: this.nextPid++ } : {}),
          },
        ];
        const stats = {
          podman_restore_duration: 700_000,
          container_statistics: [
            {
              Id: c.id,
              runtime_restore_duration: 500_000,
              criu_statistics: { forking_time: 100, restore_time: 400_000, pages_restored: 66_000 },
            },
          ],
        };
        return {
          code: 0,
          stdout: `${JSON.stringify(stats)}\nSPOTLIFT_TIMES 1000000000000 1002500000000 0\n`,
          stderr: '',
          startNs: 1_000_000_000_000n,
          endNs: 1_002_500_000_000n,
        };
      },
      cancel: () => Promise.resolve(),
    }));
  }

  restoreLocal(node: NodeRecord, id: string) {
    return this.answer('restoreLocal', node, [id.slice(0, 12)], () => {
      if (this.fail.restoreLocal) return { ok: false, error: this.fail.restoreLocal };
      const c = this.node(node.id).containers?.find((x) => x.id === id);
      if (!c) return { ok: false, error: 'no such container' };
      Object.assign(c, { running: true, checkpointed: false, state: 'running', rawState: 'running' });
      c.mainPid = this.nextPid++;
      return { ok: true, error: '' };
    });
  }

  remove(node: NodeRecord, id: string): Promise<boolean> {
    return this.answer('remove', node, [id.slice(0, 12)], (n) => {
      const refused = this.fail.removeRefusedOnce?.indexOf(node.id) ?? -1;
      if (refused >= 0) {
        this.fail.removeRefusedOnce!.splice(refused, 1);
        throw new Error(`node '${node.id}' refused an SSH session channel (Unable to exec)`);
      }
      if (this.fail.removeOn?.includes(node.id)) return false;
      n.containers = (n.containers ?? []).filter((c) => c.id !== id);
      return true;
    });
  }

  /** Nodes where a Podman command of the migration still runs (waitIdle answers false there). */
  busy: string[] = [];

  waitIdle(node: NodeRecord, path: string): Promise<boolean> {
    return this.answer('waitIdle', node, [path], () => !this.busy.includes(node.id));
  }

  volumesPresent(node: NodeRecord, names: readonly string[]): Promise<string[]> {
    return this.answer('volumesPresent', node, [...names], (n) => names.filter((v) => (n.volumes ?? []).includes(v)));
  }

  removeVolumes(node: NodeRecord, names: readonly string[]): Promise<boolean> {
    return this.answer('removeVolumes', node, [...names], (n) => {
      n.volumes = (n.volumes ?? []).filter((v) => !names.includes(v));
      return true;
    });
  }

  portsInUse(node: NodeRecord, ports: readonly number[]): Promise<number[]> {
    return this.answer('portsInUse', node, [...ports], (n) => ports.filter((p) => (n.portsInUse ?? []).includes(p)));
  }

  /** The calls of one operation, as `node:arg,arg`. */
  ran(op: string): string[] {
    return this.calls.filter((c) => c.startsWith(`${op} `)).map((c) => c.slice(op.length + 1));
  }

  private node(id: string): FakePodmanNode {
    return (this.nodes[id] ??= {});
  }

  private answer<T>(op: string, node: NodeRecord, args: unknown[], read: (n: FakePodmanNode) => T): Promise<T> {
    this.calls.push(`${op} ${node.id}:${args.join(',')}`);
    const n = this.node(node.id);
    if (n.unreachable) return Promise.reject(new Error(`node ${node.id} is unreachable`));
    try {
      return Promise.resolve(read(n));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}
