/**
 * The one shape every notice source produces. Providers differ in how they learn that a node will go;
 * everything downstream (dedup, evacuation) sees only this.
 */

/** Where a notice came from. `webhook` is anything pushed to `POST /notices` without a more precise source. */
export type NoticeSource = 'aws' | 'gcp' | 'azure' | 'k8s' | 'webhook';

/**
 * What the notice means for the processes on the node.
 * - `preemption`: spot capacity is being reclaimed (AWS Spot ITN, GCP `instance/preempted`, Azure `Preempt`).
 * - `termination`: the node goes away for another reason (Azure `Terminate`/`Redeploy`, AWS instance
 *   retirement or stop events, GCP `TERMINATE_ON_HOST_MAINTENANCE`, a handler's taint).
 * - `maintenance`: the node stays but will be disrupted (reboot, freeze, live migration by the cloud).
 * - `rebalance`: an early, advisory signal (AWS rebalance recommendation); nothing is scheduled yet.
 */
export type NoticeKind = 'termination' | 'rebalance' | 'maintenance' | 'preemption';

/** All sources, in a stable order (used by schemas). */
export const NOTICE_SOURCES = ['aws', 'gcp', 'azure', 'k8s', 'webhook'] as const satisfies readonly NoticeSource[];

/** All kinds, in a stable order (used by schemas). */
export const NOTICE_KINDS = [
  'termination',
  'rebalance',
  'maintenance',
  'preemption',
] as const satisfies readonly NoticeKind[];

/** A cloud's or cluster's word that a node will go, normalised to one deadline. */
export interface Notice {
  /** Our node id (never the cloud's instance id unless the two are the same). */
  nodeId: string;
  source: NoticeSource;
  kind: NoticeKind;
  /** The source's own verb, e.g. AWS `terminate|stop|hibernate`, Azure `Preempt`, a taint key. */
  action?: string;
  /** When the node (or its processes) are expected to be gone. Estimated where the source gives none. */
  deadline: Date;
  /** True when `deadline` was estimated from a configured lead time rather than read from the payload. */
  deadlineEstimated: boolean;
  /** When we observed the notice. */
  receivedAt: Date;
  /** Same value for the same event however often it is seen; see {@link makeDedupKey}. */
  dedupKey: string;
  /** A human-readable one-liner for logs and the evacuation record. */
  reason: string;
  /** The validated payload as received, for the record. */
  raw: unknown;
}

/**
 * Builds a dedup key from the parts that identify an event. Times are deliberately NOT part of it: AWS's
 * mock recomputes `time` on every request, and a real deadline can be revised without being a new event.
 * Parts are URI-encoded so a `:` in a node id cannot make two different keys collide.
 */
export function makeDedupKey(nodeId: string, source: NoticeSource, kind: NoticeKind, eventId?: string): string {
  const parts = [nodeId, source, kind];
  if (eventId !== undefined && eventId !== '') parts.push(eventId);
  return parts.map(encodeURIComponent).join(':');
}

/**
 * A key that ignores the source: use it as the deduplicator's `keyOf` when one node is watched through
 * several channels (its IMDS over SSH *and* a handler's taint) and they must raise one evacuation.
 */
export function crossSourceDedupKey(notice: Pick<Notice, 'nodeId' | 'kind'>): string {
  return [notice.nodeId, notice.kind].map(encodeURIComponent).join(':');
}
