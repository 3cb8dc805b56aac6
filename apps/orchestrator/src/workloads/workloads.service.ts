import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { BadRequestError, NotFoundError, type WorkloadRecord } from '@spotlift/domain';
import { checkDeclaredPath, Clock, NodeOps } from '@spotlift/engine';
import { NodeRepository, WorkloadRepository } from '@spotlift/store';
import { shq } from '@spotlift/transport';

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
    const seen = tree
      ? { tree: tree.pids, rssBytes: tree.rssBytes, state: 'running' as const }
      : { state: 'gone' as const };
    // Written onto the record as it is now (versioned: a migration may have saved it meanwhile); what was
    // read is only applied if the record still names the process that was inspected and nothing moves it.
    const saved = await this.workloads.update(id, (current) => {
      if (current.nodeId !== w.nodeId || current.pid !== w.pid) return false;
      if (current.state === 'migrating' || current.state === 'checkpointed') return false;
      Object.assign(current, seen, { updatedAt: this.clock.now().toISOString() });
    });
    return saved ?? this.get(id);
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
