import { Inject, Injectable, Logger, type OnApplicationBootstrap, Optional } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { WorkerHost } from '@nestjs/bullmq';
import { Queue, type Worker } from 'bullmq';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import {
  evacuationFinished,
  type EvacuationRecord,
  type MigrationRecord,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import { NodeOps, isFinished } from '@spotlift/engine';
import { type JournaledRepository, NodeRepository, OutageTolerantFlags } from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { MigrationReconciler } from '../migrations/migration-reconciler.js';
import { NodesService } from '../nodes/nodes.service.js';
import { EvacuationQueue } from '../evacuations/evacuation-queue.js';
import { ENGINE_MIGRATIONS, ENGINE_WORKLOADS, EVACUATION_JOURNAL, NODE_JOURNAL, REDIS } from './core.module.js';
import { RedisLink } from './redis-link.js';

/**
 * Puts back into Redis what this process knows and Redis may have lost, at boot and after every outage:
 * - BullMQ's queues and workers get an 'error' listener (one log line per outage, no stack per retry);
 * - the commit claims the worker took locally while Redis was away are written back (a cancel they
 *   overtook is noted on the migration);
 * - the worker's journal: pending record copies are written back unless Redis holds a newer one; when Redis
 *   came back without this worker's marker key (it restarted empty), every journaled migration and workload
 *   it lacks is re-created, a workload marked 'gone' when its node says its pid no longer runs, and boot
 *   reconciliation re-queues what is unfinished;
 * - nodes and evacuations this host wrote (JournalCopies) are re-created when Redis came back empty (nodes
 *   first), an open evacuation queued again;
 * - nodes of the config file that Redis lacks are registered (and probed) again.
 * Not recovered: nodes and evacuations only an `api`-role replica wrote (its journal is not read back),
 * workloads this worker never moved, checkpoints, notice claims, BullMQ jobs (unfinished migrations get new
 * ones from reconciliation).
 */
@Injectable()
export class StoreResync implements OnApplicationBootstrap {
  private readonly logger = new Logger('resync');
  private chain: Promise<void> = Promise.resolve();
  /** False until the boot resync ran: Redis may be away at boot, then the first reconnect does it. */
  private booted = false;

  constructor(
    private readonly config: AppConfig,
    private readonly link: RedisLink,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly nodesService: NodesService,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    private readonly discovery: DiscoveryService,
    @Inject(ENGINE_MIGRATIONS) private readonly migrations: JournaledRepository<MigrationRecord>,
    @Inject(ENGINE_WORKLOADS) private readonly workloads: JournaledRepository<WorkloadRecord>,
    private readonly flags: OutageTolerantFlags,
    @Inject(NODE_JOURNAL) private readonly nodeJournal: JournaledRepository<NodeRecord>,
    @Inject(EVACUATION_JOURNAL) private readonly evacuationJournal: JournaledRepository<EvacuationRecord>,
    @Optional() private readonly reconciler?: MigrationReconciler,
    @Optional() private readonly evacuationQueue?: EvacuationQueue,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.listenToBullMq();
    this.link.onUp(() => this.run('reconnect'));
    // Nodes at boot are the config loader's; the journal is read back before the worker takes jobs.
    if (this.link.isUp) await this.run('boot');
  }

  /** One run at a time: outages can follow each other faster than a resync takes. */
  run(why: 'boot' | 'reconnect'): Promise<void> {
    this.chain = this.chain.then(() =>
      this.resync(why).catch((error: Error) =>
        this.logger.error({ msg: 'resync failed; the next reconnect tries again', why, error: error.message }),
      ),
    );
    return this.chain;
  }

  private async resync(why: 'boot' | 'reconnect'): Promise<void> {
    const lateBoot = why === 'reconnect' && !this.booted;
    if (this.config.runsWorker) await this.resyncJournal(lateBoot ? 'boot' : why);
    this.booted = true;
    if (why === 'reconnect') await this.reseedNodes();
    // At boot (or at the first reconnect when Redis was away then), only after the journal's write-back: unfinished
    // migrations whose job is gone get one. Before it, Redis may still hold another host's stale copy of a
    // migration this host's journal knows finished (worker-hosts.e2e: it was queued, and run again).
    if ((why === 'boot' || lateBoot) && this.config.runsWorker) await this.reconciler?.reconcile();
  }

  private async resyncJournal(why: string): Promise<void> {
    if (why === 'boot') {
      // Finished migrations Redis has had for a week are no longer worth a copy on this disk.
      const weekAgo = new Date(Date.now() - 7 * 24 * 3_600_000).toISOString();
      await this.migrations.prune(weekAgo, (m) => isFinished(m));
    }
    for (const id of await this.flags.flushClaims()) {
      const m = await this.migrations.get(id);
      if (!m) continue;
      (m.notes ??= []).push(
        `${new Date().toISOString()} a cancel requested just before Redis became unreachable was overtaken by the commit`,
      );
      await this.migrations.save(m);
    }
    // Workloads before migrations: whoever sees a migration's end state finds its workload where it ended.
    const flushed = [await this.workloads.flush(), await this.migrations.flush()];
    const marker = this.markerKey();
    let restored: string[] = [];
    if (!(await this.redis.exists(marker))) {
      // Nodes first: a workload brought back is checked on its node.
      const n = await this.nodeJournal.restoreMissing();
      const e = await this.evacuationJournal.restoreMissing();
      const w = await this.workloads.restoreMissing();
      await this.markGoneWorkloads(w.written);
      const m = await this.migrations.restoreMissing();
      restored = [...n.written, ...e.written, ...w.written, ...m.written];
      await this.redis.set(marker, new Date().toISOString());
      await this.requeueEvacuations(e.written);
      // After an outage the migrations brought back are finished or still driven by this process: nothing is
      // queued here (at boot, `resync` reconciles once this write-back is done).
    }
    const written = flushed.flatMap((f) => f.written);
    const skipped = flushed.flatMap((f) => f.skipped);
    const error = flushed.find((f) => f.error)?.error;
    if (written.length || skipped.length || restored.length || error) {
      this.logger.log({ msg: 'journal written back to redis', why, written, skipped, restored, error });
    }
  }

  /**
   * An open evacuation brought back lost its job with Redis: queued again under its usual id (a no-op where
   * the job survived); the coordinator carries on from the record.
   */
  private async requeueEvacuations(ids: string[]): Promise<void> {
    for (const id of ids) {
      const e = await this.evacuationJournal.get(id);
      if (e && !evacuationFinished(e) && e.policy !== 'record') await this.evacuationQueue?.enqueue(id);
    }
  }

  /** A restored workload is checked on its node: a pid that no longer runs there is not reported running. */
  private async markGoneWorkloads(ids: string[]): Promise<void> {
    for (const id of ids) {
      const w = await this.workloads.get(id);
      const node = w && (await this.nodes.get(w.nodeId));
      if (!w || !node || w.state !== 'running') continue;
      const tree = await this.ops.inspectTree(node, w.pid).catch(() => null);
      if (tree !== undefined) continue; // running, or the node did not answer: leave it as the journal says
      w.state = 'gone';
      w.updatedAt = new Date().toISOString();
      await this.workloads.save(w);
    }
  }

  private async reseedNodes(): Promise<void> {
    for (const spec of this.config.nodes) {
      if (await this.nodes.get(spec.id)) continue;
      const node = await this.nodesService.register(spec).catch((error: Error) => {
        this.logger.error({ msg: 'node not registered again', node: spec.id, error: error.message });
        return undefined;
      });
      if (node)
        this.logger.warn({ msg: 'node registered again (redis had lost it)', node: node.id, state: node.state });
    }
  }

  /** Present while Redis still holds what this worker wrote; gone when Redis came back empty. */
  private markerKey(): string {
    const dir = createHash('sha256').update(this.config.stateDir).digest('hex').slice(0, 12);
    return `${this.config.redisPrefix}:journal-marker:${hostname()}:${dir}`;
  }

  private listenToBullMq(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (instance instanceof Queue) {
        instance.on('error', (error: Error) => this.link.report(`bullmq queue ${instance.name}`, error));
      } else if (instance instanceof WorkerHost) {
        try {
          const worker = (instance as WorkerHost<Worker>).worker;
          worker.on('error', (error: Error) => this.link.report(`bullmq worker ${worker.name}`, error));
        } catch {
          /* a processor without a worker (not started in this role) */
        }
      }
    }
  }
}
