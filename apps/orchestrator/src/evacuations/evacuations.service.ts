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
import { EvacuationRepository, NodeRepository, WorkloadRepository } from '@spotlift/store';
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
    const all = await this.evacuations.list();
    const openOnNode = all.filter((e) => e.nodeId === node.id && !evacuationFinished(e));
    const open = openOnNode.find((e) => e.policy === 'evacuate') ?? openOnNode.find((e) => e.policy === policy);
    if (open && policy !== 'record') return { evacuation: await this.join(open, noticeRecord), created: false };
    // The dedup claim lasts an hour at most: an event listed for days comes back through it, and one that an
    // evacuation already handled (same event, no earlier deadline) raises nothing new.
    const handled = this.sameEventHandled(all, node.id, noticeRecord);
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
    const next =
      policy === 'evacuate' && node.state !== 'terminating' && node.state !== 'gone'
        ? 'terminating'
        : policy === 'low-risk-first' && node.state === 'ready'
          ? 'draining'
          : undefined;
    if (!next) return;
    node.state = next;
    node.updatedAt = this.clock.now().toISOString();
    await this.nodes.save(node);
  }

  private async earlySignalScope(node: NodeRecord): Promise<EarlySignalScope> {
    const running = (await this.workloads.list()).filter((w) => w.nodeId === node.id && w.state === 'running');
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

  /**
   * The coordinator rewrites the whole record as it goes (carrying a stored `cordon` over); a write of ours
   * that lands between its read and its write is lost, so look again a few times and write it back.
   */
  private async recordCordon(id: string, cordon: EvacuationCordon): Promise<void> {
    for (let attempt = 0; attempt < 4; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 300));
      const rec = await this.evacuations.get(id);
      if (!rec) return;
      if (rec.cordon) {
        if (attempt > 0) return;
        continue;
      }
      rec.cordon = cordon;
      await this.evacuations.save(rec);
    }
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
      for (const w of rec.earlySignal?.workloads ?? []) addEvent(rec, this.clock.now(), `${w.workloadId}: ${w.reason}`);
      await this.evacuations.save(rec);
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
    addEvent(rec, now, `policy '${rec.policy}' for ${rec.notice.kind} notices: recorded, no migration started`);
    Object.assign(rec, {
      state: 'completed',
      finishedAt: now.toISOString(),
      outcome: {
        moved: 0,
        missed: 0,
        failed: 0,
        beforeDeadline: true,
        summary: `${rec.notice.kind} notice recorded (policy '${rec.policy}')`,
      },
    });
    await this.evacuations.save(rec);
    this.logger.log({
      msg: 'early signal recorded',
      evacuation: rec.id,
      kind: rec.notice.kind,
      reason: rec.notice.reason,
    });
  }

  /** A finished evacuation of this node raised by the same event with the same (or an earlier) deadline. */
  private sameEventHandled(all: EvacuationRecord[], nodeId: string, n: EvacuationNotice): EvacuationRecord | undefined {
    const deadline = Date.parse(n.deadline);
    return all.find(
      (e) =>
        e.nodeId === nodeId &&
        evacuationFinished(e) &&
        [e.notice, ...(e.otherNotices ?? [])].some((o) => o.dedupKey === n.dedupKey && o.kind === n.kind) &&
        deadline >= Date.parse(e.deadline) - DEADLINE_TOLERANCE_MS,
    );
  }

  /**
   * A notice for a node with an open evacuation joins it. When its deadline is earlier, the evacuation takes
   * it (recorded in `deadlineChanges`); the coordinator running it re-plans at its next tick.
   */
  private async join(open: EvacuationRecord, notice: EvacuationNotice): Promise<EvacuationRecord> {
    open.otherNotices = [...(open.otherNotices ?? []), notice].slice(-20);
    const now = this.clock.now();
    if (Date.parse(notice.deadline) < Date.parse(open.deadline) - DEADLINE_TOLERANCE_MS) {
      open.deadlineChanges = [
        ...(open.deadlineChanges ?? []),
        {
          at: now.toISOString(),
          from: open.deadline,
          to: notice.deadline,
          source: notice.source,
          kind: notice.kind,
          reason: notice.reason,
        },
      ].slice(-20);
      addEvent(open, now, `deadline moved earlier by a ${notice.kind} notice: ${open.deadline} -> ${notice.deadline}`);
      open.deadline = notice.deadline;
      this.logger.warn({ msg: 'evacuation deadline moved earlier', evacuation: open.id, deadline: open.deadline });
    }
    addEvent(open, this.clock.now(), `another notice for the node joined this evacuation: ${notice.reason}`);
    open.updatedAt = this.clock.now().toISOString();
    await this.evacuations.save(open);
    return open;
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
