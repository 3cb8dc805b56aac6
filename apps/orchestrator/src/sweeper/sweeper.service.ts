import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Redis } from 'ioredis';
import {
  Clock,
  NodeOps,
  PodmanOps,
  Sweeper,
  isFinished,
  trialMaxMs,
  type SweepItem,
  type SweepReport,
} from '@spotlift/engine';
import { staleContainerAction, staleCopyAction, type LossTakeover, type NodeRecord } from '@spotlift/domain';
import { CheckpointRepository, MigrationRepository, NodeRepository, WorkloadRepository } from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';

/** What `GET /sweeper` answers: the last sweep (any replica's), and counts of what sweeps did so far (resumes, kills, directories removed, errors). */
export interface SweeperStatus {
  last: SweepReport | null;
  /** Items of the last sweep that need a person: left frozen (`report`) or an action that failed. */
  attention: SweepItem[];
  totals: Record<string, number>;
}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const CHECKPOINT_LIVE = new Set(['queued', 'taking', 'restoring']);

/**
 * Runs the sweeper (libs/engine sweeper) on worker replicas: at boot and every `SPOTLIFT_SWEEP_INTERVAL_MS`,
 * one replica at a time (a Redis lease). Logs each action (an error for what it leaves to a person), keeps the
 * last report and running totals in Redis for `GET /sweeper`, and moves a workload record to the destination's
 * copy when the sweeper killed its frozen source.
 */
@Injectable()
export class SweeperService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('sweeper');
  private readonly sweeper: Sweeper;
  /** Podman on fenced nodes too: only for a lost node's stale copy of a restored container. */
  private readonly podmanUnfenced: PodmanOps;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly ops: NodeOps,
    private readonly nodes: NodeRepository,
    private readonly migrations: MigrationRepository,
    private readonly checkpoints: CheckpointRepository,
    private readonly workloads: WorkloadRepository,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly scheduler: SchedulerRegistry,
    podman: PodmanOps,
  ) {
    this.podmanUnfenced = podman.unfenced();
    this.sweeper = new Sweeper(
      ops,
      { stateOf: (id) => this.stateOf(id) },
      {
        imageRoot: config.imageRoot,
        keepImagesMaxAgeMs: config.sweeper.keepImagesMaxAgeMs,
        orphanGraceMs: config.sweeper.orphanGraceMs,
        trialMaxMs: trialMaxMs(config.live.trialTimeoutMs),
      },
      clock,
      podman,
    );
  }

  onApplicationBootstrap(): void {
    const every = this.config.sweeper.intervalMs;
    // Worker roles sweep (they have SSH reach to the nodes); every role answers GET /sweeper from Redis.
    if (!every || !this.config.runsWorker) return;
    this.scheduler.addInterval(
      'sweeper',
      setInterval(() => this.tick(), every),
    );
    this.tick();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.scheduler.doesExist('interval', 'sweeper')) this.scheduler.deleteInterval('sweeper');
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.runOnce()
      .catch((error: unknown) => this.logger.error({ msg: 'sweep failed', error: String(error) }))
      .finally(() => (this.running = undefined));
  }

  /** One sweep, unless another replica is sweeping (then undefined). */
  async runOnce(): Promise<SweepReport | undefined> {
    const lease = `${this.config.redisPrefix}:sweeper:lease`;
    const token = randomUUID();
    const ttl = Math.max(60_000, this.config.sweeper.intervalMs * 2);
    if ((await this.redis.set(lease, token, 'PX', ttl, 'NX')) !== 'OK') return undefined;
    try {
      const all = await this.nodes.list();
      await this.killStaleCopies(all.filter((n) => n.fence));
      // A fenced node is not swept: nothing but the kill above may run there (fenced-shell.ts).
      const nodes = all.filter((n) => n.state !== 'gone' && !n.fence);
      const report = await this.sweeper.sweep(nodes);
      for (const item of report.items) await this.settle(item);
      await this.record(report);
      return report;
    } finally {
      await this.redis.eval(RELEASE, 1, lease, token).catch(() => undefined);
    }
  }

  /**
   * First thing each sweep: on a fenced (lost) node that answers again, the copy of each workload restored
   * elsewhere from a guard checkpoint is killed, when it is still that process (same start time: a reused pid
   * is someone else's). The restored copy is never touched: only the takeover's stale pid on its old node.
   */
  private async killStaleCopies(fenced: NodeRecord[]): Promise<void> {
    if (!fenced.length) return;
    const ops = this.ops.unfenced();
    const stale = (await this.checkpoints.list()).filter((c) => c.restore?.takeover && !c.restore.takeover.staleGoneAt);
    for (const cp of stale) {
      const t = cp.restore!.takeover!;
      const node = fenced.find((n) => n.id === t.fromNodeId);
      if (!node) continue;
      let outcome: string;
      try {
        if (t.staleContainer)
          outcome = await this.removeStaleContainer(node, { ...t, staleContainer: t.staleContainer });
        else {
          const tree = await ops.inspectTree(node, t.stalePid);
          const found = tree ? { ...(tree.root ? { startTime: tree.root.identity.startTime } : {}) } : undefined;
          const decided = staleCopyAction(t, found);
          if (decided.action === 'gone') outcome = decided.outcome;
          else {
            const state = await ops.killTree(node, t.stalePid);
            if (state !== 'gone') throw new Error(`pid ${t.stalePid} did not die (state ${state})`);
            outcome = `stale copy pid ${t.stalePid} killed on ${node.id}`;
            this.logger.warn({
              msg: 'sweeper: stale copy of a restored workload killed',
              checkpointId: cp.id,
              node: node.id,
              pid: t.stalePid,
            });
          }
        }
      } catch (error) {
        // Still silent (or the kill failed): the next sweep tries again; the node stays fenced meanwhile.
        this.logger.debug({ msg: 'sweeper: fenced node not swept yet', node: node.id, error: String(error) });
        continue;
      }
      const at = this.clock.now().toISOString();
      await this.checkpoints.update(cp.id, (current) => {
        if (!current.restore?.takeover) return false;
        Object.assign(current.restore.takeover, { staleGoneAt: at, staleOutcome: outcome });
      });
      await this.redis.hincrby(`${this.config.redisPrefix}:sweeper:totals`, 'stale-copies-gone', 1);
    }
  }

  /** A container's stale copy: removed by its full id on the returned node, if Podman there still has it. */
  private async removeStaleContainer(node: NodeRecord, t: LossTakeover & { staleContainer: string }): Promise<string> {
    const decided = staleContainerAction(t, await this.podmanUnfenced.inspect(node, t.staleContainer));
    if (decided.action === 'gone') return decided.outcome;
    if (!(await this.podmanUnfenced.remove(node, t.staleContainer))) {
      throw new Error(`container ${t.staleContainer.slice(0, 12)} could not be removed`);
    }
    this.logger.warn({
      msg: 'sweeper: stale copy of a restored container removed',
      node: node.id,
      container: t.staleContainer,
    });
    return `stale copy, container ${t.staleContainer.slice(0, 12)}, removed on ${node.id}`;
  }

  async status(): Promise<SweeperStatus> {
    const [raw, totals] = await Promise.all([
      this.redis.get(`${this.config.redisPrefix}:sweeper:last`),
      this.redis.hgetall(`${this.config.redisPrefix}:sweeper:totals`),
    ]);
    const last = raw ? (JSON.parse(raw) as SweepReport) : null;
    return {
      last,
      attention: last?.items.filter((i) => i.action === 'report' || i.error) ?? [],
      totals: Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, Number(v)])),
    };
  }

  private async stateOf(id: string): Promise<'none' | 'live' | 'finished'> {
    const m = await this.migrations.get(id);
    if (m) return isFinished(m) ? 'finished' : 'live';
    // Checkpoints work in `<imageRoot>/<checkpoint id>` (taking) and `<id>-r<attempt>` (restoring).
    const cp = await this.checkpoints.get(id.replace(/-r\d+$/, ''));
    if (cp) return CHECKPOINT_LIVE.has(cp.state) ? 'live' : 'finished';
    return 'none';
  }

  private async settle(item: SweepItem): Promise<void> {
    const fields = { ...item, msg: `sweeper: ${item.action}` };
    if (item.error) this.logger.error({ ...fields, msg: `sweeper: ${item.action} failed` });
    else if (item.action === 'report') this.logger.error({ ...fields, msg: 'sweeper: needs a person, left as found' });
    else if (item.action === 'resume-source' || item.action === 'kill-source' || item.removedCopyOn)
      this.logger.warn(fields);
    else if (item.action === 'remove-images' && item.removedFrom.length) this.logger.log(fields);
    else if (item.action === 'remove-trial')
      this.logger.log({ ...fields, msg: "sweeper: a dead post-copy trial's leftovers removed" });
    if (item.action === 'kill-source' && !item.error && item.workloadId && item.restoredPid) {
      // The destination's copy is the workload now; a record still pointing at the killed source follows it.
      const w = await this.workloads.get(item.workloadId);
      if (w && w.nodeId === item.sourceNodeId && w.pid === item.pid && item.destinationNodeId) {
        Object.assign(w, {
          nodeId: item.destinationNodeId,
          pid: item.restoredPid,
          state: 'running',
          updatedAt: this.clock.now().toISOString(),
        });
        delete w.identity;
        await this.workloads.save(w);
      }
    }
    if (item.action === 'resume-source' && !item.error && item.workloadId && item.containerPid) {
      // A container restored from its kept checkpoint runs under a new main pid: the record follows it.
      const w = await this.workloads.get(item.workloadId);
      if (w && w.kind === 'podman' && w.nodeId === item.sourceNodeId && w.pid === item.pid) {
        Object.assign(w, { pid: item.containerPid, state: 'running', updatedAt: this.clock.now().toISOString() });
        await this.workloads.save(w);
      }
    }
  }

  private async record(report: SweepReport): Promise<void> {
    const p = this.config.redisPrefix;
    const multi = this.redis.multi().set(`${p}:sweeper:last`, JSON.stringify(report));
    for (const item of report.items) {
      // Events, not states: a tree left frozen is re-listed by every sweep (see `attention`), a kill happens once.
      if ((item.action === 'resume-source' || item.action === 'kill-source') && !item.error)
        multi.hincrby(`${p}:sweeper:totals`, item.action, 1);
      if (item.error) multi.hincrby(`${p}:sweeper:totals`, 'errors', 1);
      if (item.removedCopyOn) multi.hincrby(`${p}:sweeper:totals`, 'copies-removed', 1);
      if (item.removedFrom.length)
        multi.hincrby(`${p}:sweeper:totals`, 'image-directories-removed', item.removedFrom.length);
    }
    await multi.exec();
  }
}
