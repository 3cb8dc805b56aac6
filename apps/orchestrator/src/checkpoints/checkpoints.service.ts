import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  BadRequestError,
  ConflictError,
  DomainError,
  NotFoundError,
  checkpointSettled,
  leavesRunning,
  type CheckpointMode,
  guardChildOf,
  guardDumpInputOf,
  planGuardDump,
  lastDumpPlan,
  processKey,
  type CheckpointRecord,
  type LossTakeover,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import { CheckpointFlow, Clock, NodeOps, PodmanOps, isFinished, openDataKey } from '@spotlift/engine';
import { chooseDestination } from '@spotlift/placement';
import {
  CheckpointRepository,
  MigrationRepository,
  NodeRepository,
  WorkloadClaims,
  WorkloadRepository,
  checkpointOwner,
  CHECKPOINT_INDEX,
  type Page,
  type PageQuery,
  MIGRATION_INDEX,
  allWhere,
  checkpointsOfWorkload,
} from '@spotlift/store';
import { inspectForRequest } from '../common/node-inspection.js';
import { AppConfig } from '../config/app-config.js';
import { candidateNode, placementWorkload } from '../evacuations/evacuation-input.js';
import { claimWorkload } from '../migrations/workload-claim.js';
import { CheckpointQueue } from './checkpoint-queue.js';

const NodeId = z.string().min(1).max(63);

export const CreateCheckpoint = z
  .object({
    workload: z.string().min(1).max(64),
    /** Default: the configured `evacuation.storageNodeId`. */
    storage: NodeId.optional(),
    /** Page traffic to the storage node, as for migrations: CRIU's TLS (default), tcp, or an SSH tunnel. */
    transport: z.enum(['tcp', 'tls', 'ssh']).default('tls'),
    /**
     * `storage` (default): the workload is killed once stored and lives in the images. `forensic`: a copy of
     * the running workload (`dump --leave-running`): it keeps running; a restore of the copy is a clone.
     */
    mode: z.enum(['storage', 'forensic']).default('storage'),
  })
  .strict();
export type CreateCheckpoint = z.infer<typeof CreateCheckpoint>;

export const RestoreCheckpoint = z
  .object({
    /** Default: chosen by placement among ready nodes with CRIU and the memory. */
    destination: NodeId.optional(),
  })
  .strict();
export type RestoreCheckpoint = z.infer<typeof RestoreCheckpoint>;

@Injectable()
export class CheckpointsService {
  constructor(
    private readonly checkpoints: CheckpointRepository,
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly migrations: MigrationRepository,
    private readonly ops: NodeOps,
    private readonly flow: CheckpointFlow,
    private readonly queue: CheckpointQueue,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    private readonly claims: WorkloadClaims,
    private readonly podman: PodmanOps,
  ) {}

  async list(): Promise<CheckpointRecord[]> {
    return (await this.checkpoints.list()).reverse();
  }

  page(query: PageQuery): Promise<Page<CheckpointRecord>> {
    return this.checkpoints.page(query, CHECKPOINT_INDEX);
  }

  async get(id: string): Promise<CheckpointRecord> {
    const cp = await this.checkpoints.get(id);
    if (!cp) throw new NotFoundError('checkpoint', id);
    return cp;
  }

  /** Checks what can be checked without touching the workload, records the checkpoint and queues it. */
  async create(
    body: Omit<CreateCheckpoint, 'mode'> & { mode: CheckpointMode },
    link: Pick<CheckpointRecord, 'evacuationId'> & { guardParentId?: string } = {},
  ): Promise<CheckpointRecord> {
    const workload = await this.workloads.get(body.workload);
    if (!workload) throw new NotFoundError('workload', body.workload);
    const source = await this.nodes.get(workload.nodeId);
    if (!source) throw new NotFoundError('node', workload.nodeId);
    if (workload.state !== 'running') {
      throw new ConflictError(
        `workload '${workload.id}' is ${workload.state}; only a running workload can be checkpointed`,
      );
    }
    await this.refuseBusy(workload);
    const storageId = body.storage ?? this.config.evacuation.storageNodeId;
    if (!storageId) throw new BadRequestError('no storage node: give `storage` or configure evacuation.storageNodeId');
    const storage = await this.nodes.get(storageId);
    if (!storage) throw new NotFoundError('node', storageId);
    const problem =
      storage.id === source.id
        ? 'it is the workload’s own node'
        : storage.state !== 'ready'
          ? `it is ${storage.state}`
          : !storage.probe?.criuOk
            ? `CRIU does not work there (${storage.probe?.error ?? 'not probed'})`
            : undefined;
    if (problem) throw new BadRequestError(`storage node '${storage.id}' cannot hold the checkpoint: ${problem}`);
    const tree = await this.runningTree(workload, source);
    const id = `cp-${randomUUID().slice(0, 12)}`;
    // The same claim a migration takes: one job per process may freeze it (see MigrationsService.create).
    const claimKey = processKey(workload);
    const holders = { migrations: this.migrations, checkpoints: this.checkpoints };
    await claimWorkload(this.claims, holders, workload.id, claimKey, checkpointOwner(id));
    const now = this.clock.now().toISOString();
    const chain =
      body.mode === 'guard'
        ? await this.planGuardChain(workload, source, storage.id)
        : link.guardParentId
          ? await this.lastOnGuardChain(workload, source, storage.id)
          : undefined;
    const checkpoint: CheckpointRecord = {
      id,
      claimKey,
      workloadId: workload.id,
      workloadName: workload.name,
      sourceNodeId: source.id,
      storageNodeId: storage.id,
      imageDir: `${storage.checkpointRoot ?? this.config.checkpointRoot}/${workload.id}/${id}`,
      state: 'queued',
      phases: [],
      criu: {},
      bytes: { pages: 0, images: 0 },
      rssBytes: tree.rssBytes,
      transport: body.transport,
      ...(workload.kind === 'podman' ? { kind: 'podman' as const } : {}),
      ...(body.mode !== 'storage' ? { mode: body.mode } : {}),
      ...(link.evacuationId ? { evacuationId: link.evacuationId } : {}),
      ...(chain ? { guardChain: chain.link } : {}),
      ...(chain?.kind === 'full'
        ? { notes: [`full ${body.mode === 'guard' ? 'guard' : 'last'} dump: ${chain.reason}`] }
        : {}),
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.checkpoints.save(checkpoint);
      await this.queue.enqueueTake(id);
    } catch (error) {
      await this.claims.release(claimKey, checkpointOwner(id)).catch(() => undefined);
      throw error;
    }
    return checkpoint;
  }

  /**
   * A guard checkpoint is incremental where its node tracks dirty memory and the last one is a safe parent
   * (libs/domain guard-chain.ts), full otherwise, with the reason kept on the record.
   */
  private async planGuardChain(workload: WorkloadRecord, source: NodeRecord, storageNodeId: string) {
    const mine = await checkpointsOfWorkload(this.checkpoints, workload.id);
    return planGuardDump(
      guardDumpInputOf(workload, source, mine, storageNodeId, this.config.checkpointKey !== undefined),
    );
  }

  /**
   * A short notice's last checkpoint (a storage one, the source stops at its dump) on top of the guard chain: an
   * incremental dump on the chain's newest safe parent where the chain allows it (guard-chain.ts; the same rules
   * as the next guard dump), else full with the reason. Never a parent itself.
   */
  private async lastOnGuardChain(workload: WorkloadRecord, source: NodeRecord, storageNodeId: string) {
    return lastDumpPlan(await this.planGuardChain(workload, source, storageNodeId));
  }

  /**
   * Records a restore request on a stored checkpoint and queues it; bad input touches nothing. `takeover`:
   * the guard pass restoring a lost (fenced) node's workload: the restored copy becomes the workload.
   */
  async restore(
    id: string,
    body: RestoreCheckpoint,
    takeover?: LossTakeover,
    rollback?: { reason: string },
  ): Promise<CheckpointRecord> {
    const cp = await this.get(id);
    if (cp.state !== 'stored') throw new ConflictError(this.notRestorable(cp), { state: cp.state });
    // An encrypted checkpoint this orchestrator's key cannot open: 409 now, nothing queued (the job checks again).
    if (cp.encryption) openDataKey(this.config.checkpointKey, cp.encryption, `checkpoint '${cp.id}'`);
    const workload = await this.workloads.get(cp.workloadId);
    if (!workload) throw new NotFoundError('workload', cp.workloadId);
    // A guard-restore's rollback goes back to the source, under notice (no placement target) but still there.
    const { destination, reason } = rollback
      ? await this.sourceOf(cp, rollback.reason)
      : await this.chooseDestination(body.destination, cp, workload);
    if (leavesRunning(cp) && destination.id === workload.nodeId) {
      // Its pids, ports and files are in use there by the original, which still runs: CRIU would fail at
      // best; a clone belongs on another node.
      throw new ConflictError(
        `checkpoint '${cp.id}' is a forensic copy of workload '${workload.id}', which runs on '${workload.nodeId}'; restore the clone on another node`,
        { node: workload.nodeId },
      );
    }
    const attempt = (cp.restore?.attempt ?? 0) + 1;
    if (cp.restore?.error)
      cp.notes = [...(cp.notes ?? []), `restore ${cp.restore.attempt} failed: ${cp.restore.error}`];
    const now = this.clock.now().toISOString();
    cp.restore = {
      attempt,
      destinationNodeId: destination.id,
      destinationReason: reason,
      requestedAt: now,
      phases: [],
      ...(takeover ? { takeover } : {}),
      ...(rollback ? { rollback: true } : {}),
    };
    cp.state = 'restoring';
    cp.updatedAt = now;
    await this.checkpoints.save(cp);
    await this.queue.enqueueRestore(cp.id, attempt);
    return cp;
  }

  /** Removes the images from the storage node, then the record. */
  async remove(id: string): Promise<{ id: string; removed: true; imageDir: string }> {
    const cp = await this.get(id);
    if (!checkpointSettled(cp)) {
      throw new ConflictError(`checkpoint '${cp.id}' is ${cp.state}; delete it once that has ended`, {
        state: cp.state,
      });
    }
    const child = guardChildOf(cp.id, await checkpointsOfWorkload(this.checkpoints, cp.workloadId));
    if (child) {
      throw new ConflictError(
        `checkpoint '${cp.id}' holds pages incremental guard checkpoint '${child.id}' builds on; delete that one first`,
        { child: child.id },
      );
    }
    if (!(await this.flow.removeImages(cp))) {
      throw new DomainError(
        'node_unreachable',
        `the images in ${cp.imageDir} on '${cp.storageNodeId}' could not be removed; the checkpoint is kept, try again`,
        { node: cp.storageNodeId },
        true,
      );
    }
    await this.checkpoints.delete(cp.id);
    return { id: cp.id, removed: true, imageDir: cp.imageDir };
  }

  private notRestorable(cp: CheckpointRecord): string {
    switch (cp.state) {
      case 'restored':
        return `checkpoint '${cp.id}' was already restored to '${cp.restore?.destinationNodeId}'; restoring it again would run the workload twice`;
      case 'restoring':
        return `checkpoint '${cp.id}' is being restored to '${cp.restore?.destinationNodeId}'`;
      case 'failed':
        return `checkpoint '${cp.id}' failed (${cp.error ?? 'no reason recorded'}); nothing is stored`;
      default:
        return `checkpoint '${cp.id}' is ${cp.state}; it can be restored once stored`;
    }
  }

  /** The workload's tree as it runs now (a container: asked of its node's Podman by id first); 400 when it does not. */
  private async runningTree(workload: WorkloadRecord, source: NodeRecord) {
    let pid = workload.pid;
    if (workload.kind === 'podman') {
      const c = workload.container ? await this.podman.inspect(source, workload.container) : undefined;
      if (!c?.running || c.mainPid === undefined) {
        throw new BadRequestError(
          `workload '${workload.id}': container ${workload.container?.slice(0, 12)} ${c ? `is ${c.rawState}` : 'is unknown to Podman'} on '${source.id}'`,
        );
      }
      pid = c.mainPid;
    }
    const tree = await inspectForRequest(this.ops, source, pid);
    if (!tree) throw new BadRequestError(`workload '${workload.id}' (pid ${pid}) no longer runs on '${source.id}'`);
    return tree;
  }

  private async refuseBusy(workload: WorkloadRecord): Promise<void> {
    const ofWorkload = [`workload=${workload.id}`];
    const migrating = (await allWhere(this.migrations, MIGRATION_INDEX, ofWorkload)).find((m) => !isFinished(m));
    if (migrating) {
      throw new ConflictError(`workload '${workload.id}' is migrating in ${migrating.id}`, { migration: migrating.id });
    }
    const taking = (await allWhere(this.checkpoints, CHECKPOINT_INDEX, ofWorkload)).find(
      (c) => c.state === 'queued' || c.state === 'taking',
    );
    if (taking) {
      throw new ConflictError(`workload '${workload.id}' is being checkpointed in ${taking.id}`, {
        checkpoint: taking.id,
      });
    }
  }

  private async sourceOf(cp: CheckpointRecord, why: string): Promise<{ destination: NodeRecord; reason: string }> {
    const node = await this.nodes.get(cp.sourceNodeId);
    if (!node) throw new NotFoundError('node', cp.sourceNodeId);
    return { destination: node, reason: `rollback to the source: ${why}` };
  }

  private async chooseDestination(
    requested: string | undefined,
    cp: CheckpointRecord,
    workload: WorkloadRecord,
  ): Promise<{ destination: NodeRecord; reason: string }> {
    const settings = this.config.evacuation;
    const wanted = { ...placementWorkload(workload, settings), memoryBytes: cp.rssBytes ?? workload.rssBytes ?? 0 };
    const source = await this.nodes.get(cp.sourceNodeId);
    const origin = {
      id: cp.sourceNodeId,
      cpu: source?.probe?.cpuModel ? { model: source.probe.cpuModel } : {},
      softDirty: false,
      ...(source?.zone ? { zone: source.zone } : {}),
      ...(source?.spotPool ? { spotPool: source.spotPool } : {}),
    };
    // A forensic copy's original still runs on its node: a clone goes elsewhere (see restore).
    const all = (await this.nodes.list()).filter(
      (n) => !leavesRunning(cp) || n.id !== workload.nodeId || requested === n.id,
    );
    const view = (nodes: NodeRecord[]) =>
      nodes.map((n) =>
        candidateNode(n, {
          deadline: this.clock.now(),
          now: this.clock.now(),
          source: source ?? n,
          workloads: [],
          nodes: all,
          freshMemAvailable: {},
          reservedByNode: {},
          settings,
        }),
      );
    if (requested !== undefined) {
      const node = all.find((n) => n.id === requested);
      if (!node) throw new NotFoundError('node', requested);
      // The original node may take it back, unless it is going away (the filter says so).
      const decision = chooseDestination(wanted, { ...origin, id: '' }, view([node]), { allowUnverifiedCpu: true });
      if (!decision.ok) {
        throw new BadRequestError(`destination '${node.id}' cannot take checkpoint '${cp.id}': ${decision.reason}`);
      }
      return { destination: node, reason: 'requested' };
    }
    const decision = chooseDestination(wanted, origin, view(all), { allowUnverifiedCpu: true });
    if (!decision.ok) throw new ConflictError(`no node can take checkpoint '${cp.id}': ${decision.reason}`);
    return { destination: all.find((n) => n.id === decision.nodeId)!, reason: decision.reason };
  }
}
