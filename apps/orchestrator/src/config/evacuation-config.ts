import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { leaseTimingsProblem, type WatchLeaseTimings } from '@spotlift/notices';

/**
 * Configuration of notices and evacuations, kept out of app-config.ts so that file stays small: the node
 * spec's `metadata`, the config file's `evacuation` section and the notice watchers' environment.
 */

/** How to reach a node's cloud metadata service (over the node's SSH session; no agent needed). */
export const NodeMetadataSpec = z
  .object({
    provider: z.enum(['aws', 'gcp', 'azure']),
    /** Default: the cloud's link-local address. A test fake elsewhere, e.g. `http://10.77.0.1:40123`. */
    baseUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Azure only: this VM's name as listed in an event's `Resources` (IMDS `compute/name`). */
    vmName: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((m) => m.provider !== 'azure' || m.vmName !== undefined, {
    message: 'vmName is required for azure (events name the VMs they apply to)',
    path: ['vmName'],
  });
export type NodeMetadataSpec = z.infer<typeof NodeMetadataSpec>;

const MIB = 1024 * 1024;

/** The config file's `evacuation` section. Bandwidth defaults are LAB.md's measured SSH relay figures. */
export const EvacuationSettings = z
  .object({
    /** Seconds kept in hand before the deadline (detection delay, clock skew, the cloud being early). */
    safetyMarginSeconds: z.number().min(0).max(600).default(5),
    /** Most migrations of one evacuation at once. */
    maxParallel: z.number().int().min(1).max(64).default(4),
    /** Seconds each migration spends without moving pages (preflight, CRIU start, restore, verify). */
    perMigrationOverheadSeconds: z.number().min(0).max(120).default(1.5),
    /** The source's outbound bandwidth shared by its migrations, bytes/s. */
    sourceBandwidthBytesPerSec: z
      .number()
      .positive()
      .default(500 * MIB),
    /** One migration's page stream ceiling, bytes/s. */
    streamBandwidthBytesPerSec: z
      .number()
      .positive()
      .default(500 * MIB),
    /** Priority of workloads that declare none (1..10). */
    defaultPriority: z.number().int().min(1).max(10).default(5),
    /** Dirty rate assumed for workloads never measured, bytes/s. */
    defaultDirtyRateBytesPerSec: z.number().min(0).default(0),
    /** A node that can hold checkpoints of workloads nothing can take in time. */
    storageNodeId: z.string().min(1).max(63).optional(),
    /**
     * What a rebalance recommendation or maintenance event does: `record` (default), `evacuate` (everything,
     * as for a termination), or `low-risk-first` (move workloads of priority <= `lowRiskMaxPriority` now,
     * warm up the others; the node is drained so nothing new lands on it).
     */
    earlySignalPolicy: z.enum(['record', 'evacuate', 'low-risk-first']).default('record'),
    /** `low-risk-first`: workloads at or below this priority move on the early signal. */
    lowRiskMaxPriority: z.number().int().min(1).max(10).default(3),
    /**
     * `low-risk-first`: start the other workloads' migrations with pre-copy where the source tracks dirty
     * pages (their freeze is then only the last dirty set); `false`, or a source without soft-dirty: they stay.
     */
    earlySignalPreCopy: z.boolean().default(true),
    /**
     * `downtime`: save the most work, then the least priority-weighted downtime (sequential where there is slack);
     * `finish`: save the most work, then finish earliest (the planner before issue 16).
     */
    objective: z.enum(['downtime', 'finish']).default('downtime'),
    /**
     * CPU contention between dumps leaving one source at once: each extra one stretches every stream by this
     * fraction (issue 16 measured ~1.25 on the lab: three parallel 512 MiB dumps froze 5.6-6.1 s, one 1.7 s).
     */
    parallelDumpSlowdown: z.number().min(0).max(10).default(1),
    /** Seconds of post-copy page fill counted as this fraction of a second of downtime. */
    postCopyStallWeight: z.number().min(0).max(10).default(0.25),
    /**
     * With slack (the plan made without them finishes this long before the deadline, nothing missed), the
     * missing post-copy trials of the source's pairs run first, for at most this many seconds; 0: never.
     */
    trialBudgetSeconds: z.number().min(0).max(300).default(15),
    /**
     * Post-copy trials ahead of notices (pair-trials.ts): pairs of a node (re-)registered or whose probe changed,
     * at once; every pair whose trial is older than this, every this many seconds; one at a time per
     * installation. 0: none ahead of notices (only the evacuation's own, with slack).
     */
    trialRefreshSeconds: z.number().min(0).max(604_800).default(21_600),
    /** Approve an Azure event (StartRequests) this long before its deadline if we are not done by then. */
    azureAckLeadSeconds: z.number().min(0).max(600).default(10),
  })
  .strict();
export type EvacuationSettings = z.infer<typeof EvacuationSettings>;

/** Environment of the notice watchers. */
export const NoticeEnv = z.object({
  /** `false` turns the SSH metadata watchers and the Kubernetes watch off in this process. */
  SPOTLIFT_WATCH_NOTICES: z.enum(['true', 'false']).default('true'),
  /**
   * IMDS / Scheduled Events poll period over SSH. 250 ms (clouds advise polling at least every 1-5 s) keeps
   * notice-to-first-freeze p99 under 1 s in bench/notice; each poll costs two curl execs on the node.
   */
  SPOTLIFT_NOTICE_POLL_MS: z.coerce.number().int().min(100).max(60_000).default(250),
  /**
   * `stream`: one long-lived loop per node polls its metadata endpoint locally and prints only changes over one
   * SSH channel; `exec`: one curl exec over SSH per request (what every poll cost before).
   */
  SPOTLIFT_NOTICE_WATCH_MODE: z.enum(['stream', 'exec']).default('stream'),
  /** Kubernetes API server to watch Nodes on (taints and conditions of termination handlers). */
  SPOTLIFT_K8S_API_URL: z.url().optional(),
  /** File holding the bearer token for the Kubernetes API (a service-account token). */
  SPOTLIFT_K8S_TOKEN_PATH: z.string().min(1).optional(),
  SPOTLIFT_K8S_SKIP_TLS_VERIFY: z.enum(['true', 'false']).default('false'),
  /**
   * Longest a notice's cross-source claim is held (otherwise until 5 min after its deadline): a notice announced
   * far ahead must not make a real termination of that node look like a duplicate.
   */
  SPOTLIFT_NOTICE_DEDUP_MAX_MS: z.coerce.number().int().min(60_000).max(86_400_000).default(3_600_000),
  /**
   * Watcher sharding across replicas: a node's watch lease lapses this long after its holder's last renewal
   * (a killed replica's nodes are watched again within lease + renew ms); renewed every SPOTLIFT_WATCH_RENEW_MS.
   */
  SPOTLIFT_WATCH_LEASE_MS: z.coerce.number().int().default(5_000),
  SPOTLIFT_WATCH_RENEW_MS: z.coerce.number().int().default(1_000),
  /** Nodes a replica may hold above an even share (ceil(nodes / replicas)) before giving the excess back. */
  SPOTLIFT_WATCH_SLACK: z.coerce.number().int().min(0).max(1_000).default(0),
});
export type NoticeEnv = z.infer<typeof NoticeEnv>;

export interface NoticeSettings {
  watch: boolean;
  pollIntervalMs: number;
  watchMode: 'stream' | 'exec';
  /** The cross-source dedup claim is held at most this long (SPOTLIFT_NOTICE_DEDUP_MAX_MS). */
  dedupMaxTtlMs: number;
  /** Watch leases (libs/notices shards): each node watched by one live replica. */
  lease: WatchLeaseTimings & { slack: number };
  kubernetes?: { apiUrl: string; token?: string; skipTLSVerify: boolean };
}

/** Reads the notice settings from the parsed environment (the token file is read here, once). */
export function noticeSettings(e: NoticeEnv): NoticeSettings {
  const lease = { leaseMs: e.SPOTLIFT_WATCH_LEASE_MS, renewMs: e.SPOTLIFT_WATCH_RENEW_MS };
  const problem = leaseTimingsProblem(lease);
  if (problem) throw new RangeError(`SPOTLIFT_WATCH_LEASE_MS / SPOTLIFT_WATCH_RENEW_MS: ${problem}`);
  const token = e.SPOTLIFT_K8S_TOKEN_PATH ? readFileSync(e.SPOTLIFT_K8S_TOKEN_PATH, 'utf8').trim() : undefined;
  return {
    watch: e.SPOTLIFT_WATCH_NOTICES === 'true',
    pollIntervalMs: e.SPOTLIFT_NOTICE_POLL_MS,
    watchMode: e.SPOTLIFT_NOTICE_WATCH_MODE,
    dedupMaxTtlMs: e.SPOTLIFT_NOTICE_DEDUP_MAX_MS,
    lease: { ...lease, slack: e.SPOTLIFT_WATCH_SLACK },
    ...(e.SPOTLIFT_K8S_API_URL
      ? {
          kubernetes: {
            apiUrl: e.SPOTLIFT_K8S_API_URL,
            ...(token ? { token } : {}),
            skipTLSVerify: e.SPOTLIFT_K8S_SKIP_TLS_VERIFY === 'true',
          },
        }
      : {}),
  };
}
