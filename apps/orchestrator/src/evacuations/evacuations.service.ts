import { Injectable, Logger } from '@nestjs/common';
import {
  NotFoundError,
  evacuationFinished,
  type EarlySignalScope,
  type EvacuationCordon,
  type EvacuationNotice,
  type EvacuationPolicy,
  type EvacuationRecord,
  type NodeRecord,
} from '@spotlift/domain';
import { Clock } from '@spotlift/engine';
import type { Notice } from '@spotlift/notices';
import {
  EvacuationRepository,
  NodeRepository,
  WorkloadRepository,
  EVACUATION_INDEX,
  evacuationsOfNode,
  workloadsOnNode,
  type Page,
  type PageQuery,
} from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { KubeCordoner } from '../notices/kube-cordon.js';
import { addEvent } from './evacuation-events.js';
import { evacuationId } from './evacuation-ids.js';
import { earlySignalScope } from './evacuation-input.js';
import { EvacuationQueue } from './evacuation-queue.js';
import { manualNotice, type ManualEvacuationBody } from './manual-evacuation.js';

/** Kinds that mean the node goes: always evacuated. The others follow the fleet's early-signal policy. */
const HARD_KINDS = new Set(['preemption', 'termination']);
/** More evacuations of one (node, kind) than this in one registration of the node is a flapping source. */
const MAX_GENERATIONS = 50;
/**
 * Deadlines closer than this are the same deadline (sources recompute theirs on every poll); the notice
 * deduplicator uses it too, so what passes the dedup as `earlier` is what re-plans here.
 */
export const DEADLINE_TOLERANCE_MS = 5_000;

export interface RaiseResult {
  evacuation: EvacuationRecord;
  /** False when the notice joined an evacuation already open for the node. */
  created: boolean;
}

/** Turns a new (already deduplicated) notice into an evacuation record and its job; serves the reads. */
@Injectable()
export class EvacuationsService {
  private readonly logger = new Logger('evacuations');

  constructor(
    private readonly evacuations: EvacuationRepository,
    private readonly nodes: NodeRepository,
    private readonly queue: EvacuationQueue,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    private readonly workloads: WorkloadRepository,
    private readonly cordoner: KubeCordoner,
  ) {}

  async list(): Promise<EvacuationRecord[]> {
    return (await this.evacuations.list()).reverse();
  }

  page(query: PageQuery): Promise<Page<EvacuationRecord>> {
    return this.evacuations.page(query, EVACUATION_INDEX);
  }

  async get(id: string): Promise<EvacuationRecord> {
    const e = await this.evacuations.get(id);
    if (!e) throw new NotFoundError('evacuation', id);
    return e;
  }

  /**
   * An operator's evacuation: a termination notice of its own (see manual-evacuation.ts), raised without the
   * notice deduplicator (a person asking twice means it; an open evacuation of the node is joined, not doubled).
   */
  async evacuateNow(body: ManualEvacuationBody): Promise<RaiseResult> {
    const notice = manualNotice(body, this.clock.now());
    return this.raise(notice);
  }

  policyFor(kind: Notice['kind']): EvacuationPolicy {
    return HARD_KINDS.has(kind) ? 'evacuate' : this.config.evacuation.earlySignalPolicy;
  }

  /**
   * Marks the node terminating (or draining, for a `low-risk-first` early signal: placement and preflight
   * refuse both as destinations), records the evacuation under its deterministic id and queues it, then
   * cordons the node in Kubernetes in the background. A notice for a node that already has an open
   * evacuation of the same reach joins that one instead of starting a second.
   */
  async raise(notice: Notice): Promise<RaiseResult> {
    const node = await this.nodes.get(notice.nodeId);
    if (!node) throw new NotFoundError('node', notice.nodeId);
    const policy = this.policyFor(notice.kind);
    const noticeRecord = toRecord(notice);
    await this.markNode(node, policy);
    const ofNode = await evacuationsOfNode(this.evacuations, node.id);
    const openOnNode = ofNode.filter((e) => !evacuationFinished(e));
    const open = openOnNode.find((e) => e.policy === 'evacuate') ?? openOnNode.find((e) => e.policy === policy);
    if (open && policy !== 'record') return { evacuation: await this.join(open, noticeRecord), created: false };
    // The dedup claim lasts an hour at most: an event listed for days comes back through it, and one that an
    // evacuation already handled (same event, no earlier deadline) raises nothing new.
    const handled = this.sameEventHandled(ofNode, noticeRecord);
    if (handled) return { evacuation: handled, created: false };
    const earlySignal = policy === 'low-risk-first' ? await this.earlySignalScope(node) : undefined;

    for (let n = 1; n <= MAX_GENERATIONS; n++) {
      const rec = this.newRecord(evacuationId(node.id, notice.kind, node.createdAt, n), node.id, noticeRecord, policy);
      if (earlySignal) rec.earlySignal = earlySignal;
      if (await this.evacuations.createIfAbsent(rec)) {
        await this.begin(rec);
        if (policy !== 'record') this.cordonInBackground(rec.id, node, notice);
        return { evacuation: rec, created: true };
      }
      const existing = await this.evacuations.get(rec.id);
      // Another replica created it a moment ago, or it is still open: one evacuation, not two.
      if (existing && !evacuationFinished(existing)) return { evacuation: existing, created: false };
    }
    throw new Error(
      `node '${node.id}' had ${MAX_GENERATIONS} ${notice.kind} evacuations; refusing another (flapping source?)`,
    );
  }

  /** Nothing new may land on a node that is going (terminating) or may go soon (draining). */
  private async markNode(node: NodeRecord, policy: EvacuationPolicy): Promise<void> {
    // A versioned update: a probe or re-registration racing the notice neither loses this state nor its probe.
    await this.nodes.update(node.id, (current) => {
      const next =
        policy === 'evacuate' && current.state !== 'terminating' && current.state !== 'gone'
          ? 'terminating'
          : policy === 'low-risk-first' && current.state === 'ready'
            ? 'draining'
            : undefined;
      if (!next) return false;
      current.state = next;
      current.updatedAt = this.clock.now().toISOString();
    });
  }

  private async earlySignalScope(node: NodeRecord): Promise<EarlySignalScope> {
    const running = await workloadsOnNode(this.workloads, node.id, 'running');
    return earlySignalScope(running, node, this.config.evacuation);
  }

  /** The cordon never holds the evacuation up; its outcome is written to the record when it is known. */
  private cordonInBackground(id: string, node: NodeRecord, notice: Notice): void {
    if (!this.cordoner.enabled) return;
    void this.cordoner
      .cordon(node, notice)
      .then((cordon) => cordon && this.recordCordon(id, cordon))
      .catch((error: unknown) =>
        this.logger.warn({ msg: 'recording the cordon failed', evacuation: id, error: String(error) }),
      );
  }

  /** A versioned update: the coordinator's writes and this one both land, whichever comes first. */
  private async recordCordon(id: string, cordon: EvacuationCordon): Promise<void> {
    await this.evacuations.update(id, (rec) => {
      if (rec.cordon) return false;
      rec.cordon = cordon;
    });
  }

  private newRecord(id: string, nodeId: string, notice: EvacuationNotice, policy: EvacuationPolicy): EvacuationRecord {
    const at = this.clock.now().toISOString();
    return {
      id,
      nodeId,
      notice,
      policy,
      state: 'planning',
      deadline: notice.deadline,
      replans: 0,
      jobs: [],
      predictedMisses: [],
      events: [{ at, msg: `notice: ${notice.reason} (${notice.source}, deadline ${notice.deadline})` }],
      createdAt: at,
      updatedAt: at,
    };
  }

  private async begin(rec: EvacuationRecord): Promise<void> {
    if (rec.policy !== 'record') {
      const early = rec.earlySignal?.workloads ?? [];
      if (early.length) {
        const at = this.clock.now();
        const saved = await this.evacuations.update(rec.id, (current) => {
          for (const w of early) addEvent(current, at, `${w.workloadId}: ${w.reason}`);
        });
        if (saved) Object.assign(rec, saved);
      }
      await this.queue.enqueue(rec.id);
      this.logger.log({
        msg: 'evacuation raised',
        evacuation: rec.id,
        policy: rec.policy,
        deadline: rec.deadline,
        reason: rec.notice.reason,
      });
      return;
    }
    const now = this.clock.now();
    const saved = await this.evacuations.update(rec.id, (current) => {
      addEvent(
        current,
        now,
        `policy '${current.policy}' for ${current.notice.kind} notices: recorded, no migration started`,
      );
      Object.assign(current, {
        state: 'completed',
        finishedAt: now.toISOString(),
        outcome: {
          moved: 0,
          missed: 0,
          failed: 0,
          beforeDeadline: true,
          summary: `${current.notice.kind} notice recorded (policy '${current.policy}')`,
        },
      });
    });
    if (saved) Object.assign(rec, saved);
    this.logger.log({
      msg: 'early signal recorded',
      evacuation: rec.id,
      kind: rec.notice.kind,
      reason: rec.notice.reason,
    });
  }

  /** A finished evacuation of this node raised by the same event with the same (or an earlier) deadline. */
  private sameEventHandled(ofNode: EvacuationRecord[], n: EvacuationNotice): EvacuationRecord | undefined {
    const deadline = Date.parse(n.deadline);
    return ofNode.find(
      (e) =>
        evacuationFinished(e) &&
        [e.notice, ...(e.otherNotices ?? [])].some((o) => o.dedupKey === n.dedupKey && o.kind === n.kind) &&
        deadline >= Date.parse(e.deadline) - DEADLINE_TOLERANCE_MS,
    );
  }

  /**
   * A notice for a node with an open evacuation joins it. When its deadline is earlier, the evacuation takes
   * it (recorded in `deadlineChanges`) and the coordinator running it is told to re-plan.
   */
  private async join(open: EvacuationRecord, notice: EvacuationNotice): Promise<EvacuationRecord> {
    let moved = false;
    // A versioned update: applied to the record as stored now, so the coordinator's writes are never lost.
    const saved = await this.evacuations.update(open.id, (rec) => {
      rec.otherNotices = [...(rec.otherNotices ?? []), notice].slice(-20);
      const now = this.clock.now();
      moved = Date.parse(notice.deadline) < Date.parse(rec.deadline) - DEADLINE_TOLERANCE_MS;
      if (moved) {
        rec.deadlineChanges = [
          ...(rec.deadlineChanges ?? []),
          {
            at: now.toISOString(),
            from: rec.deadline,
            to: notice.deadline,
            source: notice.source,
            kind: notice.kind,
            reason: notice.reason,
          },
        ].slice(-20);
        addEvent(rec, now, `deadline moved earlier by a ${notice.kind} notice: ${rec.deadline} -> ${notice.deadline}`);
        rec.deadline = notice.deadline;
      }
      addEvent(rec, now, `another notice for the node joined this evacuation: ${notice.reason}`);
      rec.updatedAt = now.toISOString();
    });
    if (!saved) return open;
    if (moved) {
      this.logger.warn({ msg: 'evacuation deadline moved earlier', evacuation: saved.id, deadline: saved.deadline });
      // The coordinator running it re-plans when it hears this (a slow re-read catches a lost signal).
      await this.queue.nudge(saved.id).catch(() => undefined);
    }
    return saved;
  }
}

function toRecord(n: Notice): EvacuationNotice {
  return {
    source: n.source,
    kind: n.kind,
    ...(n.action ? { action: n.action } : {}),
    deadline: n.deadline.toISOString(),
    deadlineEstimated: n.deadlineEstimated,
    receivedAt: n.receivedAt.toISOString(),
    reason: n.reason,
    dedupKey: n.dedupKey,
    raw: n.raw,
  };
}
