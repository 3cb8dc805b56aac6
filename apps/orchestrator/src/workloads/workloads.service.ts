import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { BadRequestError, NotFoundError, type NodeRecord, type WorkloadRecord } from '@spotlift/domain';
import { checkDeclaredPath, Clock, NodeOps } from '@spotlift/engine';
import { NodeRepository, WorkloadRepository } from '@spotlift/store';
import { shq } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';

export const RegisterWorkload = z
  .object({
    name: z.string().min(1).max(120),
    node: z.string().min(1).max(63),
    pid: z.number().int().positive().max(4_194_304).optional(),
    pidfile: z.string().startsWith('/').max(4096).optional(),
    /** 1 (expendable) .. 10 (critical); evacuations save higher priorities first. Default: the fleet's. */
    priority: z.number().int().min(1).max(10).optional(),
    /** Distinct bytes the workload dirties per second, if known (up to 100 GiB/s). */
    dirtyRateBytesPerSec: z
      .number()
      .min(0)
      .max(100 * 2 ** 30)
      .optional(),
    /**
     * Files and directories the workload uses that the destination must have (open files, working
     * directory, data): copied before and, the changes only, during the freeze. Absolute paths.
     */
    paths: z
      .array(
        z.string().superRefine((p, ctx) => {
          const problem = checkDeclaredPath(p);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
      )
      .max(64)
      .optional(),
  })
  .strict()
  .refine((w) => (w.pid === undefined) !== (w.pidfile === undefined), {
    message: 'give exactly one of pid or pidfile',
  });
export type RegisterWorkload = z.infer<typeof RegisterWorkload>;

@Injectable()
export class WorkloadsService {
  constructor(
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    private readonly clock: Clock,
    private readonly config: AppConfig,
  ) {}

  list(): Promise<WorkloadRecord[]> {
    return this.workloads.list();
  }

  async get(id: string): Promise<WorkloadRecord> {
    const w = await this.workloads.get(id);
    if (!w) throw new NotFoundError('workload', id);
    return w;
  }

  /** Registers a process tree after checking over SSH that it exists; reads its tree and RSS. */
  async register(body: RegisterWorkload): Promise<WorkloadRecord> {
    const node = await this.nodes.get(body.node);
    if (!node) throw new NotFoundError('node', body.node);
    if (body.paths?.length) await this.checkReservedPaths(node, body.paths);
    const pid = body.pid ?? (await this.readPidfile(node.id, body.pidfile!));
    const tree = await this.ops.inspectTree(node, pid);
    if (!tree)
      throw new BadRequestError(`no process with pid ${pid} runs on node '${node.id}'`, { pid, node: node.id });
    const now = this.clock.now().toISOString();
    const workload: WorkloadRecord = {
      id: `wl-${randomUUID().slice(0, 8)}`,
      name: body.name,
      nodeId: node.id,
      pid,
      ...(body.pidfile ? { pidfile: body.pidfile } : {}),
      ...(body.priority !== undefined ? { priority: body.priority } : {}),
      ...(body.dirtyRateBytesPerSec !== undefined ? { dirtyRateBytesPerSec: body.dirtyRateBytesPerSec } : {}),
      ...(body.paths?.length ? { paths: body.paths } : {}),
      rssBytes: tree.rssBytes,
      tree: tree.pids,
      state: 'running',
      createdAt: now,
      updatedAt: now,
    };
    await this.workloads.save(workload);
    return workload;
  }

  /** Reads the tree and RSS again over SSH. */
  async refresh(id: string): Promise<WorkloadRecord> {
    const w = await this.get(id);
    const node = await this.nodes.get(w.nodeId);
    if (!node || w.state === 'migrating' || w.state === 'checkpointed') return w;
    const tree = await this.ops.inspectTree(node, w.pid);
    if (tree) Object.assign(w, { tree: tree.pids, rssBytes: tree.rssBytes, state: 'running' });
    else w.state = 'gone';
    w.updatedAt = this.clock.now().toISOString();
    await this.workloads.save(w);
    return w;
  }

  /**
   * The schema refused system paths already; these roots depend on the installation: spotlift's image and
   * checkpoint roots and the node's SSH login home (its authorized_keys). Migrations check both nodes again.
   */
  private async checkReservedPaths(node: NodeRecord, paths: string[]): Promise<void> {
    const res = await this.ops.run(node, 'printf %s "$HOME"', 15_000);
    const home = res.code === 0 && res.stdout.startsWith('/') ? res.stdout : undefined;
    const storage = node.checkpointRoot ? [node.checkpointRoot] : [];
    const reserved = [this.config.imageRoot, this.config.checkpointRoot, ...storage, ...(home ? [home] : [])];
    const problems = paths.map((p) => checkDeclaredPath(p, reserved)).filter((why): why is string => !!why);
    if (problems.length) throw new BadRequestError(`paths: ${problems.join('; ')}`, { paths });
  }

  private async readPidfile(nodeId: string, pidfile: string): Promise<number> {
    const node = (await this.nodes.get(nodeId))!;
    const res = await this.ops.run(node, `cat ${shq(pidfile)}`, 15_000);
    const pid = Number(res.stdout.trim());
    if (res.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
      throw new BadRequestError(`pidfile ${pidfile} on node '${nodeId}' does not hold a pid`, { pidfile });
    }
    return pid;
  }
}
