import { Injectable, Optional } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { inspectForRequest } from '../common/node-inspection.js';
import { sharedRead } from '../common/shared-read.js';
import {
  BadRequestError,
  ConflictError,
  NotFoundError,
  processKey,
  type MigrationRecord,
  type NodeRecord,
  type Strategy,
  type WorkloadRecord,
} from '@spotlift/domain';
import { Clock, CONTAINER_LIVE_UNAVAILABLE, CONTAINER_STRATEGIES, NodeOps } from '@spotlift/engine';
import {
  MIGRATION_INDEX,
  MigrationRepository,
  NodeRepository,
  type Page,
  type PageQuery,
  WorkloadClaims,
  WorkloadRepository,
  migrationOwner,
} from '@spotlift/store';
import { chooseDestination } from '@spotlift/placement';
import { AppConfig } from '../config/app-config.js';
import { candidateNode, placementWorkload } from '../evacuations/evacuation-input.js';
import { ReleasableMarks } from '../rebalance/releasable-marks.js';
import { MigrationQueue } from './migration-queue.js';
import { claimWorkload } from './workload-claim.js';

export const CreateMigration = z
  .object({
    workload: z.string().min(1).max(64),
    destination: z.string().min(1).max(63).optional(),
    /** `auto` picks per job from the pair's capabilities, memory, dirty rate, budget and deadline. */
    strategy: z.enum(['stop-and-copy', 'pre-copy', 'post-copy', 'hybrid', 'auto']).default('stop-and-copy'),
    /** Longest acceptable freeze; pre-copy converges towards it, auto chooses by it. */
    downtimeBudgetMs: z.number().int().min(1).max(3_600_000).optional(),
    /** When the source must be gone (e.g. a spot notice's termination time); bounds rounds and auto's choice. */
    deadline: z.iso.datetime({ offset: true }).optional(),
    /** Pre-copy and hybrid: rounds at most for this job, the first included (default: config `live.maxRounds`). */
    maxRounds: z.number().int().min(1).max(100).optional(),
    /**
     * Page traffic: CRIU's mutual TLS (default: pages are process memory, and a plain page-server on the data
     * address takes pages from anyone), direct TCP (an explicit choice, trusted networks), or through SSH.
     */
    transport: z.enum(['tcp', 'tls', 'ssh']).default('tls'),
    keepImages: z.boolean().default(false),
  })
  .strict();
export type CreateMigration = z.infer<typeof CreateMigration>;

/**
 * The domain command behind every migration, whoever asks: `POST /migrations` (its body, defaults applied)
 * and the evacuation coordinator (its plan line) both build one. Typed, so a caller inside the orchestrator
 * never goes through a REST body.
 */
export interface MigrationRequest {
  workloadId: string;
  /** Absent: the node with the most free memory among the suitable ones. */
  destinationNodeId?: string;
  strategy: Strategy;
  transport: MigrationRecord['transport'];
  keepImages: boolean;
  downtimeBudgetMs?: number;
  deadline?: Date;
  maxRounds?: number;
  /** The evacuation that asked for it. */
  evacuationId?: string;
}

/** The command a REST body stands for. */
export function requestFromBody(body: CreateMigration): MigrationRequest {
  return {
    workloadId: body.workload,
    ...(body.destination !== undefined ? { destinationNodeId: body.destination } : {}),
    strategy: body.strategy,
    transport: body.transport,
    keepImages: body.keepImages,
    ...(body.downtimeBudgetMs !== undefined ? { downtimeBudgetMs: body.downtimeBudgetMs } : {}),
    ...(body.deadline !== undefined ? { deadline: new Date(body.deadline) } : {}),
    ...(body.maxRounds !== undefined ? { maxRounds: body.maxRounds } : {}),
  };
}

/**
 * A named destination its hard filters refuse now (a 400 to a caller). An evacuation re-plans the move elsewhere:
 * its plan chose the node a moment ago, and the node's own notice may have come since.
 */
export class DestinationRefused extends BadRequestError {
  constructor(
    readonly nodeId: string,
    workloadId: string,
    why: string,
  ) {
    super(`destination '${nodeId}' cannot take workload '${workloadId}': ${why}`);
  }
}

@Injectable()
export class MigrationsService {
  constructor(
    private readonly migrations: MigrationRepository,
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    private readonly queue: MigrationQueue,
    private readonly clock: Clock,
    private readonly claims: WorkloadClaims,
    private readonly config: AppConfig,
    @Optional() private readonly marks?: ReleasableMarks,
  ) {}

  /**
   * Every node, read once for all the requests that ask while one read is under way: 200 migrations posted at
   * once at 1,000 nodes read the fleet 200 times over (megabytes each on the one Redis client) and timed out.
   */
  private readonly fleetNodes = sharedRead(() => this.nodes.list());

  async list(): Promise<MigrationRecord[]> {
    return (await this.migrations.list()).reverse();
  }

  /** One page of migrations (GET /migrations): from the indexes, never a read of every record. */
  page(query: PageQuery): Promise<Page<MigrationRecord>> {
    return this.migrations.page(query, MIGRATION_INDEX);
  }

  async get(id: string): Promise<MigrationRecord> {
    const m = await this.migrations.get(id);
    if (!m) throw new NotFoundError('migration', id);
    return m;
  }

  /**
   * Checks everything that can be checked without touching the workload, claims the workload's process for
   * the new job, records the migration and queues it. Bad input is answered here with a 4xx; nothing is
   * frozen before the job's own preflight passes. Two calls for the same process (the same record, two
   * records of one process, a call and an evacuation) race on the claim, an atomic SET NX in Redis: one
   * wins, the other gets a 409 naming the holder.
   */
  async create(body: CreateMigration): Promise<MigrationRecord> {
    return this.start(requestFromBody(body));
  }

  /** The domain command (see MigrationRequest); `create` is its REST adapter. */
  async start(request: MigrationRequest): Promise<MigrationRecord> {
    const workload = await this.workloads.get(request.workloadId);
    if (!workload) throw new NotFoundError('workload', request.workloadId);
    const source = await this.nodes.get(workload.nodeId);
    if (!source) throw new NotFoundError('node', workload.nodeId);
    if (workload.state !== 'running') {
      throw new ConflictError(`workload '${workload.id}' is ${workload.state}; only a running workload can migrate`);
    }
    if (workload.kind === 'podman' && !(CONTAINER_STRATEGIES as readonly string[]).includes(request.strategy)) {
      // A caller asked for what cannot run: 400. An evacuation's plan chose it by memory and dirty rate: the
      // container still has to leave, by the one way it can.
      if (request.evacuationId === undefined) {
        throw new BadRequestError(`strategy '${request.strategy}' is not available: ${CONTAINER_LIVE_UNAVAILABLE}`, {
          workload: workload.id,
        });
      }
      request = { ...request, strategy: 'stop-and-copy' };
    }
    if (workload.kind === 'podman' && request.strategy === 'pre-copy') {
      // Podman's --pre-checkpoint is CRIU's pre-dump: a source without soft-dirty tracking aborts it mid-dump.
      const dirty = await this.ops.checkFeature(source, 'mem_dirty_track');
      if (!dirty.supported) {
        const why = `${source.id} cannot track dirty memory (criu check --feature mem_dirty_track: ${dirty.reason ?? 'not supported'}; a kernel without CONFIG_MEM_SOFT_DIRTY)`;
        if (request.evacuationId === undefined) {
          throw new BadRequestError(`strategy 'pre-copy' is not available: ${why}`, { workload: workload.id });
        }
        request = { ...request, strategy: 'stop-and-copy' };
      }
    }
    if (request.deadline !== undefined && request.deadline.getTime() <= this.clock.now().getTime()) {
      throw new BadRequestError(`deadline ${request.deadline.toISOString()} has already passed`);
    }
    const id = `mig-${randomUUID().slice(0, 12)}`;
    const claimKey = processKey(workload);
    await claimWorkload(this.claims, { migrations: this.migrations }, workload.id, claimKey, migrationOwner(id));
    try {
      return await this.record(id, claimKey, request, workload, source);
    } catch (error) {
      // Nothing was queued: the workload is free again for the next caller.
      await this.claims.release(claimKey, migrationOwner(id)).catch(() => undefined);
      throw error;
    }
  }

  private async record(
    id: string,
    claimKey: string,
    request: MigrationRequest,
    workload: WorkloadRecord,
    source: NodeRecord,
  ): Promise<MigrationRecord> {
    // An evacuation's move names the destination its plan chose from the recorded size; the job's preflight
    // inspects the tree before anything is frozen and checks the destination against it. Inspecting here too
    // would add an SSH round trip to every notice's time to first freeze (the fleet bench: ~0.1 s of it).
    const planned = request.evacuationId !== undefined && request.destinationNodeId !== undefined;
    const rssBytes = planned ? (workload.rssBytes ?? 0) : await this.runningSize(source, workload);
    const { destination, reason } = await this.chooseDestination(request.destinationNodeId, source, workload, rssBytes);

    const now = this.clock.now().toISOString();
    const migration: MigrationRecord = {
      id,
      claimKey,
      workloadId: workload.id,
      sourceNodeId: source.id,
      destinationNodeId: destination.id,
      destinationReason: reason,
      strategy: request.strategy,
      transport: request.transport,
      state: 'queued',
      phases: [],
      criu: {},
      bytes: { pages: 0, images: 0 },
      keepImages: request.keepImages,
      ...(request.downtimeBudgetMs !== undefined ? { downtimeBudgetMs: request.downtimeBudgetMs } : {}),
      ...(request.deadline !== undefined ? { deadline: request.deadline.toISOString() } : {}),
      ...(request.maxRounds !== undefined ? { maxRounds: request.maxRounds } : {}),
      ...(request.evacuationId ? { evacuationId: request.evacuationId } : {}),
      createdAt: now,
      updatedAt: now,
    };
    await this.migrations.save(migration);
    // Work lands there: a node rebalancing emptied for release is no longer releasable.
    if (destination.releasable) await this.marks?.clear(destination.id, `migration ${id} lands there`);
    await this.queue.enqueue(migration.id, migration.evacuationId !== undefined);
    return migration;
  }

  /** The workload's resident size now, from its process tree on the source (a 400 when it no longer runs). */
  private async runningSize(source: NodeRecord, workload: WorkloadRecord): Promise<number> {
    const tree = await inspectForRequest(this.ops, source, workload.pid);
    if (!tree) {
      throw new BadRequestError(`workload '${workload.id}' (pid ${workload.pid}) no longer runs on '${source.id}'`);
    }
    return tree.rssBytes;
  }

  /**
   * Where the workload goes, decided by libs/placement as evacuations and checkpoint restores decide it: a
   * named node must pass placement's hard filters (state, CRIU, memory with headroom, CPU, labels); with no
   * name, placement's best-scored node (zone, spot pool, lifecycle, free memory), its reason recorded.
   */
  private async chooseDestination(
    requested: string | undefined,
    source: NodeRecord,
    workload: WorkloadRecord,
    rssBytes: number,
  ): Promise<{ destination: NodeRecord; reason: string }> {
    const settings = this.config.evacuation;
    const wanted = { ...placementWorkload(workload, settings), memoryBytes: rssBytes };
    const now = this.clock.now();
    const view = (nodes: NodeRecord[]) =>
      nodes.map((n) =>
        candidateNode(n, {
          deadline: now,
          now,
          source,
          workloads: [],
          nodes,
          freshMemAvailable: {},
          reservedByNode: {},
          settings,
        }),
      );
    const origin = {
      id: source.id,
      cpu: source.probe?.cpuModel ? { model: source.probe.cpuModel } : {},
      softDirty: source.probe?.features?.mem_dirty_track ?? false,
      ...(source.zone ? { zone: source.zone } : {}),
      ...(source.spotPool ? { spotPool: source.spotPool } : {}),
    };
    // The restore's own CPU check refuses a bad pair; a probe without a CPU model must not block a move.
    const options = { allowUnverifiedCpu: true };
    if (requested !== undefined) {
      const node = await this.nodes.get(requested);
      if (!node) throw new NotFoundError('node', requested);
      const refuse = (why: string) => new DestinationRefused(node.id, workload.id, why);
      if (node.id === source.id) throw refuse('it is the source node');
      // A named node's CPU is judged by preflight's `criu cpuinfo check`, as before: a model name that differs
      // from the source's is not proof that the restore would fail.
      const why = chooseDestination(wanted, origin, view([node]), options)
        .excluded.flatMap((x) => x.reasons)
        .filter((r) => r.code !== 'cpu-incompatible');
      if (why.length) throw refuse(why.map((r) => r.message).join('; '));
      return { destination: node, reason: 'requested' };
    }
    // Only a free choice reads the whole fleet (an evacuation names its plan's node: one read).
    const all = await this.fleetNodes();
    const decision = chooseDestination(wanted, origin, view(all), options);
    if (!decision.ok) {
      throw new ConflictError(
        `no node can take workload '${workload.id}' (${all.length ? decision.reason : 'no nodes registered'})`,
      );
    }
    const destination = all.find((n) => n.id === decision.nodeId)!;
    return { destination, reason: `placement among ${decision.ranked.length} suitable node(s): ${decision.reason}` };
  }
}
