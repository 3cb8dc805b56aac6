import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import {
  BadRequestError,
  checkpointSettled,
  guardReport,
  type GuardReport,
  ConflictError,
  NotFoundError,
  processKey,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import {
  checkDeclaredPath,
  Clock,
  identityMismatch,
  initRefusal,
  isFinished,
  movable,
  NodeOps,
  PodmanOps,
  registrationRefusal,
} from '@spotlift/engine';
import {
  CheckpointRepository,
  indexKey,
  MigrationRepository,
  NodeRepository,
  ProcessIndex,
  WorkloadRepository,
  WORKLOAD_INDEX,
  type Page,
  type PageQuery,
  MIGRATION_INDEX,
  CHECKPOINT_INDEX,
  allWhere,
  checkpointsOfWorkload,
  workloadsOfProcess,
  workloadsOnNode,
} from '@spotlift/store';
import type { GuardBody, RegisterWorkload } from './register-workload.js';
import { inspectForRequest } from '../common/node-inspection.js';
import { AppConfig } from '../config/app-config.js';
import { GuardStatusRepository } from '../guard/guard-status.js';

export { RegisterWorkload } from './register-workload.js';

/**
 * What the node shows now, next to the stored record (GET /workloads/:id writes nothing):
 * - `running`: the registered process is there (`processState` is its state letter: `T` while frozen);
 * - `gone`: no process at the pid, or another one (a reused pid);
 * - `unreachable`: the node did not answer (`reason`);
 * - `not-read`: the workload runs nowhere (gone, checkpointed), nothing to read.
 */
export interface Observed {
  at: string;
  state: 'running' | 'gone' | 'unreachable' | 'not-read';
  processState?: string;
  tree?: number[];
  rssBytes?: number;
  reason?: string;
}

export type WorkloadView = WorkloadRecord & { observed: Observed };

@Injectable()
export class WorkloadsService {
  constructor(
    private readonly workloads: WorkloadRepository,
    private readonly index: ProcessIndex,
    private readonly nodes: NodeRepository,
    private readonly migrations: MigrationRepository,
    private readonly checkpoints: CheckpointRepository,
    private readonly ops: NodeOps,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    private readonly podman: PodmanOps,
    private readonly guardStatuses: GuardStatusRepository,
  ) {}

  /** Guard mode's report: RPO, freeze overhead, the stored guard checkpoints (libs/domain guard.ts). */
  async guard(id: string): Promise<GuardReport> {
    const workload = await this.workloads.get(id);
    if (!workload) throw new NotFoundError('workload', id);
    if (!workload.guard) throw new NotFoundError('guard settings of workload', id);
    const mine = (await checkpointsOfWorkload(this.checkpoints, id)).filter((c) => c.mode === 'guard');
    const status = await this.guardStatuses.get(id);
    return guardReport(workload.guard, mine, status, this.clock.now());
  }

  /**
   * Sets (or, with undefined, ends) guard mode on a workload; a compare-and-set on the record, so a job that
   * moves it meanwhile loses nothing. Its guard checkpoints stay until deleted.
   */
  async setGuard(id: string, guard: GuardBody | undefined): Promise<WorkloadRecord> {
    await this.get(id); // 404 for an unknown workload
    const saved = await this.workloads.update(id, (current) => {
      if (guard) current.guard = guard;
      else delete current.guard;
      current.updatedAt = this.clock.now().toISOString();
    });
    if (!saved) throw new NotFoundError('workload', id);
    return saved;
  }

  list(): Promise<WorkloadRecord[]> {
    return this.workloads.list();
  }

  page(query: PageQuery): Promise<Page<WorkloadRecord>> {
    return this.workloads.page(query, WORKLOAD_INDEX);
  }

  async get(id: string): Promise<WorkloadRecord> {
    const w = await this.workloads.get(id);
    if (!w) throw new NotFoundError('workload', id);
    return w;
  }

  /**
   * Registers a process tree after reading over SSH what it is (identity, tree, RSS) and refusing what must
   * never be a workload (process-inspection.ts: pid 1, kernel threads, another namespace's process, a tree
   * carrying spotlift's own SSH session). One record per process: a second registration is a 409 naming the first.
   */
  async register(body: RegisterWorkload): Promise<WorkloadRecord> {
    const node = await this.nodes.get(body.node);
    if (!node) throw new NotFoundError('node', body.node);
    if (body.paths?.length) await this.checkReservedPaths(node, body.paths);
    if (body.kind === 'podman') return this.save(await this.containerRecord(node, body, body.container!));
    const pid = body.pid ?? (await this.readPidfile(node, body.pidfile!));
    // Refused before SSH: its tree is the whole node, which would be walked for nothing.
    if (pid === 1) throw new BadRequestError(initRefusal(node.id), { pid, node: node.id });
    const tree = await inspectForRequest(this.ops, node, pid);
    if (!tree)
      throw new BadRequestError(`no process with pid ${pid} runs on node '${node.id}'`, { pid, node: node.id });
    if (!tree.root) {
      throw new BadRequestError(`could not read what pid ${pid} is on node '${node.id}' (did it just exit?)`, { pid });
    }
    const refusal = registrationRefusal(node.id, pid, tree.root, tree.pids);
    if (refusal) throw new BadRequestError(refusal, { pid, node: node.id });
    const now = this.clock.now().toISOString();
    const workload: WorkloadRecord = {
      id: `wl-${randomUUID().slice(0, 8)}`,
      name: body.name!,
      nodeId: node.id,
      pid,
      identity: tree.root.identity,
      ...(body.pidfile ? { pidfile: body.pidfile } : {}),
      ...(body.priority !== undefined ? { priority: body.priority } : {}),
      ...(body.maxDowntimeMs !== undefined ? { maxDowntimeMs: body.maxDowntimeMs } : {}),
      ...(body.dirtyRateBytesPerSec !== undefined ? { dirtyRateBytesPerSec: body.dirtyRateBytesPerSec } : {}),
      ...(body.movable !== undefined ? { movable: body.movable } : {}),
      ...(body.paths?.length ? { paths: body.paths } : {}),
      ...(body.guard ? { guard: body.guard } : {}),
      rssBytes: tree.rssBytes,
      tree: tree.pids,
      state: 'running',
      createdAt: now,
      updatedAt: now,
    };
    return this.save(workload);
  }

  private async save(workload: WorkloadRecord): Promise<WorkloadRecord> {
    await this.claim(workload);
    try {
      await this.workloads.save(workload);
    } catch (error) {
      await this.index.unclaim(processKey(workload), workload.id).catch(() => undefined);
      throw error;
    }
    return workload;
  }

  /**
   * A Podman container, as `podman container inspect` shows it on the node: refused (400) with movable()'s
   * reasons when it cannot move (unknown, not running, a device, privileged, a runtime that cannot checkpoint,
   * a pod...), and when a bind mount is not one of the declared paths (its files would be missing on the
   * destination). Named volumes need nothing: they travel inside Podman's checkpoint archive.
   */
  private async containerRecord(node: NodeRecord, body: RegisterWorkload, ref: string): Promise<WorkloadRecord> {
    const c = await this.podman.inspect(node, ref);
    if (!c) throw new BadRequestError(`no container '${ref}' on node '${node.id}'`, { container: ref, node: node.id });
    const verdict = movable(c);
    const unbound = verdict.bindsToProvide.filter(
      (b) => !(body.paths ?? []).some((p) => b.source === p || b.source.startsWith(`${p}/`)),
    );
    const refusals = [
      ...verdict.refusals.map((r) => r.message),
      ...unbound.map((b) => `bind mount ${b.source} (at ${b.destination}) must be one of the declared paths`),
    ];
    if (refusals.length || c.mainPid === undefined) {
      throw new BadRequestError(refusals.join('; ') || `container ${c.name} has no main process`, {
        container: c.id,
        node: node.id,
        refusals: verdict.refusals.map((r) => r.code),
      });
    }
    const tree = await inspectForRequest(this.ops, node, c.mainPid);
    const now = this.clock.now().toISOString();
    return {
      id: `wl-${randomUUID().slice(0, 8)}`,
      name: body.name ?? c.name,
      nodeId: node.id,
      kind: 'podman',
      container: c.id,
      containerName: c.name,
      image: c.image,
      pid: c.mainPid,
      ...(body.priority !== undefined ? { priority: body.priority } : {}),
      ...(body.dirtyRateBytesPerSec !== undefined ? { dirtyRateBytesPerSec: body.dirtyRateBytesPerSec } : {}),
      ...(body.paths?.length ? { paths: body.paths } : {}),
      ...(tree ? { rssBytes: tree.rssBytes, tree: tree.pids } : {}),
      ...(body.guard ? { guard: body.guard } : {}),
      state: 'running',
      createdAt: now,
      updatedAt: now,
    };
  }

  /**
   * Claims the workload's process in the index (atomic across requests and replicas). A holder is only
   * passed over when its record shows it is not that process any more (deleted, moved, gone, checkpointed)
   * and it is not a registration still on its way to its save.
   */
  private async claim(w: WorkloadRecord): Promise<void> {
    const key = processKey(w);
    // The records themselves too: those from before identities were read are indexed by node and pid, and
    // an index entry a failed write did not move is caught here (the claim below is the race-free part).
    // Read from the term indexes: the process's records, and the node's for the ones without an identity.
    const [holding, onNode] = await Promise.all([
      workloadsOfProcess(this.workloads, key),
      workloadsOnNode(this.workloads, w.nodeId),
    ]);
    const same = [...holding, ...onNode].find(
      (o) => indexKey(o) === key || (!o.identity && o.nodeId === w.nodeId && o.pid === w.pid && indexKey(o)),
    );
    if (same) throw this.taken(w, same.id);
    let replacing: string | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const holder = await this.index.claim(key, w.id, replacing ? { replacing } : {});
      if (holder === w.id) return;
      // Pending first, then the record: a rival saves its record before its claim stops being pending
      // (IndexedWorkloadRepository), so in this order one of the two reads sees it. The other order let a rival
      // that saved between them look stale, and both registrations won (seen once across two replicas).
      if (await this.index.pending(key)) throw this.taken(w, holder);
      const held = await this.workloads.get(holder);
      if (held && indexKey(held) === key) throw this.taken(w, holder);
      replacing = holder;
    }
    throw new ConflictError(`pid ${w.pid} on node '${w.nodeId}' is being registered concurrently; try again`);
  }

  /**
   * The schema refused system paths already; these roots depend on the installation: spotlift's image and
   * checkpoint roots and the node's SSH login home (its authorized_keys). Migrations check both nodes again.
   */
  private async checkReservedPaths(node: NodeRecord, paths: string[]): Promise<void> {
    const home = await this.ops.loginHome(node);
    const storage = node.checkpointRoot ? [node.checkpointRoot] : [];
    const reserved = [this.config.imageRoot, this.config.checkpointRoot, ...storage, ...(home ? [home] : [])];
    const problems = paths.map((p) => checkDeclaredPath(p, reserved)).filter((why): why is string => !!why);
    if (problems.length) throw new BadRequestError(`paths: ${problems.join('; ')}`, { paths });
  }

  private taken(w: WorkloadRecord, holder: string): ConflictError {
    const what = w.kind === 'podman' ? `container ${w.containerName ?? w.container}` : `pid ${w.pid}`;
    return new ConflictError(`${what} on node '${w.nodeId}' is already registered as workload '${holder}'`, {
      workload: holder,
    });
  }

  /**
   * Forgets a workload: the record and its index entry. Nothing on the node is touched. Refused (409) while a
   * job works on it, and while a stored checkpoint is its only copy (the checkpoint's restore needs the record).
   */
  async remove(id: string): Promise<void> {
    const w = await this.get(id);
    const busy = await this.busyReason(w);
    if (busy) throw new ConflictError(`workload '${id}' cannot be removed: ${busy}`, { workload: id });
    await this.workloads.delete(id);
  }

  private async busyReason(w: WorkloadRecord): Promise<string | undefined> {
    if (w.state === 'migrating') return 'it is migrating (a job froze or is moving it)';
    const ofWorkload = [`workload=${w.id}`];
    const [migrations, checkpoints] = await Promise.all([
      allWhere(this.migrations, MIGRATION_INDEX, ofWorkload),
      allWhere(this.checkpoints, CHECKPOINT_INDEX, ofWorkload),
    ]);
    const migration = migrations.find((m) => m.workloadId === w.id && !isFinished(m));
    if (migration) return `migration '${migration.id}' (${migration.state}) works on it`;
    const checkpoint = checkpoints.find((c) => c.workloadId === w.id && !checkpointSettled(c));
    if (checkpoint) return `checkpoint '${checkpoint.id}' (${checkpoint.state}) works on it`;
    if (w.state === 'checkpointed') {
      const stored = checkpoints.find((c) => c.workloadId === w.id && c.state === 'stored');
      return `it runs nowhere: its images are in checkpoint '${stored?.id ?? '?'}'; restore or delete that first`;
    }
    return undefined;
  }

  /** The record as stored, with what the node shows now beside it; writes nothing. */
  async view(id: string): Promise<WorkloadView> {
    const w = await this.get(id);
    return { ...w, observed: await this.observe(w) };
  }

  /**
   * Reads the tree and RSS again and saves them (or `gone`). The record is read again after the inspection
   * and only its inspection fields change, and only if it still names the process that was read: a job that
   * moved or froze the workload meanwhile is not overwritten.
   */
  async refresh(id: string): Promise<WorkloadView> {
    const before = await this.get(id);
    const observed = await this.observe(before);
    const w = await this.get(id);
    const unchanged = w.nodeId === before.nodeId && w.pid === before.pid && w.state === 'running';
    if (unchanged && (observed.state === 'running' || observed.state === 'gone')) {
      if (observed.state === 'gone') w.state = 'gone';
      else Object.assign(w, { tree: observed.tree, rssBytes: observed.rssBytes });
      w.updatedAt = observed.at;
      await this.workloads.save(w);
    }
    return { ...w, observed };
  }

  private async observe(w: WorkloadRecord): Promise<Observed> {
    const at = this.clock.now().toISOString();
    if (w.state === 'gone' || w.state === 'checkpointed') return { at, state: 'not-read', reason: `it is ${w.state}` };
    const node = await this.nodes.get(w.nodeId);
    if (!node) return { at, state: 'unreachable', reason: `node '${w.nodeId}' is not registered` };
    try {
      const tree = await this.ops.inspectTree(node, w.pid);
      if (!tree) return { at, state: 'gone', reason: `no process with pid ${w.pid} on '${node.id}'` };
      if (w.identity && !tree.root) return { at, state: 'gone', reason: `pid ${w.pid} exited while it was read` };
      const other = identityMismatch(w, tree.root?.identity);
      if (other) return { at, state: 'gone', reason: other };
      return {
        at,
        state: 'running',
        ...(tree.root ? { processState: tree.root.state } : {}),
        tree: tree.pids,
        rssBytes: tree.rssBytes,
      };
    } catch (error) {
      return { at, state: 'unreachable', reason: (error as Error).message };
    }
  }

  private async readPidfile(node: NodeRecord, pidfile: string): Promise<number> {
    const pid = await this.ops.readPidfile(node, pidfile);
    if (pid === undefined) {
      throw new BadRequestError(`pidfile ${pidfile} on node '${node.id}' does not hold a pid`, { pidfile });
    }
    return pid;
  }
}
