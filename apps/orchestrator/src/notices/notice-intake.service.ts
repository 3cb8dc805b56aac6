import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { NotFoundError, type EvacuationRecord } from '@spotlift/domain';
import {
  crossSourceDedupKey,
  NoticeDeduplicator,
  type Notice,
  type NoticeProblem,
  type NoticeRecovery,
} from '@spotlift/notices';
import { NodeRepository } from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';
import { EvacuationsService } from '../evacuations/evacuations.service.js';

export interface IntakeResult {
  /** The notice was seen before (by this or another replica, on any channel): nothing was raised. */
  duplicate: boolean;
  evacuation?: EvacuationRecord;
  created?: boolean;
}

/** A watched notice whose evacuation could not be raised is retried after this, doubling per failure, up to the max. */
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 8_000;

/** Where every notice enters: pushed ones from `POST /notices`, watched ones from the node watchers. */
@Injectable()
export class NoticeIntake {
  private readonly logger = new Logger('notices');
  /** Per node, how long the next failed raise keeps its claim before the watcher may retry it. */
  private readonly retryAfterMs = new Map<string, number>();

  constructor(
    private readonly dedup: NoticeDeduplicator,
    private readonly evacuations: EvacuationsService,
    private readonly nodes: NodeRepository,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly config: AppConfig,
  ) {}

  /** A validated pushed notice: the node must be ours, then the first sighting raises an evacuation. */
  async pushed(notice: Notice): Promise<IntakeResult> {
    if (!(await this.nodes.get(notice.nodeId))) throw new NotFoundError('node', notice.nodeId);
    const claim = await this.dedup.classify(notice);
    if (claim === 'earlier')
      this.logger.warn({ msg: 'notice with an earlier deadline', node: notice.nodeId, kind: notice.kind });
    if (claim === 'duplicate') {
      this.logger.log({
        msg: 'duplicate notice ignored',
        node: notice.nodeId,
        kind: notice.kind,
        source: notice.source,
      });
      return { duplicate: true };
    }
    const r = await this.raise(notice);
    return { duplicate: false, ...r };
  }

  /** A watched notice that `watchNotices` already found new. */
  async watched(notice: Notice): Promise<void> {
    this.logger.log({
      msg: 'notice',
      node: notice.nodeId,
      source: notice.source,
      kind: notice.kind,
      deadline: notice.deadline.toISOString(),
      reason: notice.reason,
    });
    const wait = this.retryAfterMs.get(notice.nodeId) ?? FIRST_RETRY_MS;
    try {
      await this.raise(notice, wait);
      this.retryAfterMs.delete(notice.nodeId);
    } catch (error) {
      // Logged, and the claim released after `wait`: the watcher sees the notice again then and retries. Released
      // at once, every poll (4 a second per node) raised again into the overload that failed it: 10 notices at
      // 1,000 nodes raised 1,692 times in two minutes, each one more load on a Redis client already timing out.
      this.retryAfterMs.set(notice.nodeId, Math.min(wait * 2, MAX_RETRY_MS));
      this.logger.error({
        msg: 'raising an evacuation failed',
        node: notice.nodeId,
        error: (error as Error).message,
        retryInMs: wait,
      });
    }
  }

  problem(p: NoticeProblem, repeats: number): void {
    this.logger.warn({
      msg: 'notice source problem',
      node: p.nodeId,
      source: p.source,
      code: p.code,
      problem: p.message,
      ...(p.status !== undefined ? { status: p.status } : {}),
      ...(repeats ? { suppressedSinceLast: repeats } : {}),
    });
  }

  /** The end of a node's failure streak (its problems were logged once, at its start). */
  recovered(r: NoticeRecovery): void {
    this.logger.log({
      msg: 'notice source recovered',
      node: r.nodeId,
      source: r.source,
      failedPolls: r.failedPolls,
      suppressed: r.suppressed,
      lastedMs: r.lastedMs,
    });
  }

  /** Raises the evacuation; on failure the notice's dedup claim is released (after `releaseAfterMs`). */
  private async raise(notice: Notice, releaseAfterMs = 0): Promise<{ evacuation: EvacuationRecord; created: boolean }> {
    try {
      return await this.evacuations.raise(notice);
    } catch (error) {
      const release = () =>
        this.redis.del(`${this.config.redisPrefix}:notice-dedup:${crossSourceDedupKey(notice)}`).catch(() => 0);
      if (releaseAfterMs > 0) setTimeout(() => void release(), releaseAfterMs).unref();
      else await release();
      throw error;
    }
  }
}
