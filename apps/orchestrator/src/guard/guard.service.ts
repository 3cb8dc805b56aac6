import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Redis } from 'ioredis';
import { Clock, NodeOps } from '@spotlift/engine';
import { CheckpointRepository, EvacuationRepository, NodeRepository, WorkloadRepository } from '@spotlift/store';
import { CheckpointsService } from '../checkpoints/checkpoints.service.js';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';
import { GuardScheduler } from './guard-scheduler.js';
import { GuardStatusRepository } from './guard-status.js';
import { NodeLossPass } from './node-loss-pass.js';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * Runs guard mode's passes on worker replicas every tick, one replica at a time (a Redis lease, as the sweeper
 * does): the node-loss pass first (node-loss-pass.ts: silent nodes, fencing, restores), then the checkpoints
 * (guard-scheduler.ts), so each guarded workload's checkpoints are taken, and restored, once per installation.
 */
@Injectable()
export class GuardService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('guard');
  private readonly pass: GuardScheduler;
  private readonly loss: NodeLossPass;
  private running: Promise<unknown> | undefined;

  constructor(
    workloads: WorkloadRepository,
    nodes: NodeRepository,
    checkpoints: CheckpointRepository,
    evacuations: EvacuationRepository,
    ops: NodeOps,
    service: CheckpointsService,
    clock: Clock,
    statuses: GuardStatusRepository,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
  ) {
    this.pass = new GuardScheduler(workloads, nodes, checkpoints, statuses, service, clock, {
      ...(config.evacuation.storageNodeId ? { storageNodeId: config.evacuation.storageNodeId } : {}),
      encrypted: config.checkpointKey !== undefined,
    });
    const claims = `${config.redisPrefix}:guard:loss-claim`;
    this.loss = new NodeLossPass(
      workloads,
      nodes,
      checkpoints,
      evacuations,
      statuses,
      service,
      {
        get: async (key) => (await redis.hget(claims, key)) ?? undefined,
        claim: async (key, value) => {
          await redis.hsetnx(claims, key, value);
          return (await redis.hget(claims, key)) ?? value;
        },
      },
      // Well below the threshold: a pass must not hang on a node that swallows packets.
      (node) => ops.reachable(node, Math.min(10_000, config.nodeLossAfterMs / 2)),
      clock,
      config.nodeLossAfterMs,
    );
  }

  private get every(): number {
    return this.config.guardTickMs;
  }

  onApplicationBootstrap(): void {
    if (!this.every) return;
    this.scheduler.addInterval(
      'guard',
      setInterval(() => this.tick(), this.every),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.scheduler.doesExist('interval', 'guard')) this.scheduler.deleteInterval('guard');
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.runOnce()
      .catch((error: unknown) => this.logger.error({ msg: 'guard pass failed', error: String(error) }))
      .finally(() => (this.running = undefined));
  }

  private async runOnce(): Promise<void> {
    const lease = `${this.config.redisPrefix}:guard:lease`;
    const token = randomUUID();
    if ((await this.redis.set(lease, token, 'PX', Math.max(60_000, this.every * 2), 'NX')) !== 'OK') return;
    try {
      for (const item of await this.loss.runOnce()) {
        if (item.action === 'restore' || item.action === 'refused')
          this.logger.warn({ msg: `node loss: ${item.action}`, ...item });
      }
      for (const item of await this.pass.runOnce()) {
        if (item.action === 'take' || item.action === 'skip' || item.action === 'refused' || item.removed) {
          this.logger.log({ msg: `guard: ${item.action}`, ...item });
        }
      }
    } finally {
      await this.redis.eval(RELEASE, 1, lease, token).catch(() => undefined);
    }
  }
}
