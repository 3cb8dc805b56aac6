import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
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
import { Clock, NodeOps } from '@spotlift/engine';
import {
  MigrationRepository,
  NodeRepository,
  WorkloadClaims,
  WorkloadRepository,
  migrationOwner,
} from '@spotlift/store';
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

const HEADROOM = 1.1;

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
  ) {}

  async list(): Promise<MigrationRecord[]> {
    return (await this.migrations.list()).reverse();
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
    const tree = await this.ops.inspectTree(source, workload.pid);
    if (!tree) {
      throw new BadRequestError(`workload '${workload.id}' (pid ${workload.pid}) no longer runs on '${source.id}'`);
    }
    const { destination, reason } = await this.chooseDestination(
      request.destinationNodeId,
      source,
      workload,
      tree.rssBytes,
    );

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
    await this.queue.enqueue(migration.id);
    return migration;
  }

  private async chooseDestination(
    requested: string | undefined,
    source: NodeRecord,
    workload: WorkloadRecord,
    rssBytes: number,
  ): Promise<{ destination: NodeRecord; reason: string }> {
    if (requested !== undefined) {
      const node = await this.nodes.get(requested);
      if (!node) throw new NotFoundError('node', requested);
      const problem = this.unsuitable(node, source, rssBytes);
      if (problem)
        throw new BadRequestError(`destination '${node.id}' cannot take workload '${workload.id}': ${problem}`);
      return { destination: node, reason: 'requested' };
    }
    const candidates = (await this.nodes.list()).map((n) => ({ n, problem: this.unsuitable(n, source, rssBytes) }));
    const fit = candidates
      .filter((c) => !c.problem)
      .sort((a, b) => free(b.n) - free(a.n) || a.n.id.localeCompare(b.n.id));
    const best = fit[0];
    if (!best) {
      const why = candidates.map((c) => `${c.n.id}: ${c.problem}`).join('; ');
      throw new ConflictError(`no node can take workload '${workload.id}' (${why || 'no nodes registered'})`);
    }
    return { destination: best.n, reason: `most free memory among ${fit.length} suitable node(s)` };
  }

  private unsuitable(node: NodeRecord, source: NodeRecord, rssBytes: number): string | undefined {
    if (node.id === source.id) return 'it is the source node';
    if (node.state !== 'ready') return `it is ${node.state}`;
    if (!node.probe?.criuOk) return `CRIU does not work there (${node.probe?.error ?? 'not probed'})`;
    if (free(node) < rssBytes * HEADROOM) return `only ${Math.round(free(node) / 2 ** 20)} MiB available`;
    return undefined;
  }
}

function free(node: NodeRecord): number {
  return node.probe?.memAvailableBytes ?? 0;
}
