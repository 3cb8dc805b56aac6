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

/** Where every notice enters: pushed ones from `POST /notices`, watched ones from the node watchers. */
@Injectable()
export class NoticeIntake {
  private readonly logger = new Logger('notices');

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
    try {
      await this.raise(notice);
    } catch (error) {
      // Logged, and the claim released: the watcher sees the notice again on its next poll and retries.
      this.logger.error({ msg: 'raising an evacuation failed', node: notice.nodeId, error: (error as Error).message });
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

  private async raise(notice: Notice): Promise<{ evacuation: EvacuationRecord; created: boolean }> {
    try {
      return await this.evacuations.raise(notice);
    } catch (error) {
      await this.redis
        .del(`${this.config.redisPrefix}:notice-dedup:${crossSourceDedupKey(notice)}`)
        .catch(() => undefined);
      throw error;
    }
  }
}
