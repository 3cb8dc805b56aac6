import type { Redis } from 'ioredis';

/** What the migrations between two nodes measured for one page transport. */
export interface PairLinkRecord {
  sourceNodeId: string;
  destinationNodeId: string;
  transport: string;
  /** Exponentially weighted mean of the page throughput of recent migrations (half from the newest). */
  bytesPerSec: number;
  samples: number;
  at: string;
}

/** How much of a new figure goes into the mean: recent migrations count most, one odd run does not rule. */
export const LINK_EWMA_WEIGHT = 0.5;
/** Unused measurements expire: a week-old figure says little about today's network. */
export const LINK_TTL_MS = 7 * 24 * 3_600_000;

export function nextLinkRecord(
  previous: PairLinkRecord | undefined,
  sample: Omit<PairLinkRecord, 'samples'>,
): PairLinkRecord {
  if (!previous) return { ...sample, samples: 1 };
  const bytesPerSec = LINK_EWMA_WEIGHT * sample.bytesPerSec + (1 - LINK_EWMA_WEIGHT) * previous.bytesPerSec;
  return { ...sample, bytesPerSec, samples: previous.samples + 1 };
}

/** A sample as a completed migration records it: `startedAt`, when its pages began to flow, lets the source's
 * outbound figure see which transfers left the node together. */
export type PairLinkSample = Omit<PairLinkRecord, 'samples'> & { startedAt?: string };

/**
 * What left one node over one transport while several migrations ran from it at once: the sum of their page rates,
 * each weighted by how much of the newest transfer it overlapped. Per-pair figures cannot give it (each pair sees
 * its own share of the node's link).
 */
export interface NodeOutboundRecord {
  nodeId: string;
  transport: string;
  /** Exponentially weighted mean of the total outbound rate, over transfers that overlapped another. */
  bytesPerSec: number;
  /** Transfers that overlapped in the newest sample (itself included). */
  concurrent: number;
  samples: number;
  at: string;
}

/** One transfer a node sent, kept a while so the next one can see what it overlapped. */
export interface OutboundTransfer {
  startedAt: number;
  endedAt: number;
  bytesPerSec: number;
}

/** Transfers older than this (ended) cannot overlap a new one worth measuring. */
export const OUTBOUND_RECENT_MS = 3_600_000;
const OUTBOUND_RECENT_MAX = 32;

/**
 * Folds a finished transfer into the node's recent transfers and, when it overlapped others, into its outbound
 * figure: the total rate during the transfer is each overlapping transfer's rate times the share of the
 * transfer's time they overlapped. A transfer alone says nothing about the node's total (the pair figure has it).
 */
export function nextOutbound(
  previous: NodeOutboundRecord | undefined,
  recent: readonly OutboundTransfer[],
  t: OutboundTransfer,
  ids: { nodeId: string; transport: string; at: string },
): { record: NodeOutboundRecord | undefined; recent: OutboundTransfer[] } {
  const kept = recent.filter((x) => x.endedAt > t.endedAt - OUTBOUND_RECENT_MS).slice(-(OUTBOUND_RECENT_MAX - 1));
  const span = Math.max(1, t.endedAt - t.startedAt);
  const overlapping = kept.filter((x) => x.startedAt < t.endedAt && x.endedAt > t.startedAt);
  const others = overlapping.reduce(
    (s, x) => s + (x.bytesPerSec * (Math.min(x.endedAt, t.endedAt) - Math.max(x.startedAt, t.startedAt))) / span,
    0,
  );
  const next = [...kept, t];
  if (!overlapping.length) return { record: previous, recent: next };
  const total = t.bytesPerSec + others;
  const bytesPerSec = previous ? LINK_EWMA_WEIGHT * total + (1 - LINK_EWMA_WEIGHT) * previous.bytesPerSec : total;
  return {
    record: { ...ids, bytesPerSec, concurrent: overlapping.length + 1, samples: (previous?.samples ?? 0) + 1 },
    recent: next,
  };
}

/** The transfer a sample describes, when it says when its pages began. */
const transferOf = (sample: PairLinkSample): OutboundTransfer | undefined => {
  if (!sample.startedAt) return undefined;
  const startedAt = Date.parse(sample.startedAt);
  const endedAt = Date.parse(sample.at);
  return Number.isFinite(startedAt) && endedAt >= startedAt
    ? { startedAt, endedAt, bytesPerSec: sample.bytesPerSec }
    : undefined;
};

/**
 * Page throughput measured per node pair and transport (source -> destination), fed by every completed
 * migration and read by `auto` instead of an assumed figure; and per source node, its total outbound rate while
 * several migrations left it (`outbound`). Shared by every worker through Redis.
 */
export abstract class PairLinks {
  abstract get(source: string, destination: string, transport: string): Promise<PairLinkRecord | undefined>;
  abstract record(sample: PairLinkSample): Promise<PairLinkRecord>;
  abstract outbound(source: string, transport: string): Promise<NodeOutboundRecord | undefined>;
}

export class RedisPairLinks extends PairLinks {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
  }

  private key(source: string, destination: string, transport: string): string {
    return `${this.prefix}:link:${source}->${destination}:${transport}`;
  }

  async get(source: string, destination: string, transport: string): Promise<PairLinkRecord | undefined> {
    const raw = await this.redis.get(this.key(source, destination, transport));
    return raw ? (JSON.parse(raw) as PairLinkRecord) : undefined;
  }

  private outboundKey(source: string, transport: string): string {
    return `${this.prefix}:outbound:${source}:${transport}`;
  }

  async outbound(source: string, transport: string): Promise<NodeOutboundRecord | undefined> {
    const raw = await this.redis.get(this.outboundKey(source, transport));
    return raw ? (JSON.parse(raw) as NodeOutboundRecord) : undefined;
  }

  /** Read, fold in, write: two workers finishing on one pair at once may lose one sample, which is harmless. */
  async record(sample: PairLinkSample): Promise<PairLinkRecord> {
    const { startedAt: _startedAt, ...figure } = sample;
    const next = nextLinkRecord(
      await this.get(sample.sourceNodeId, sample.destinationNodeId, sample.transport),
      figure,
    );
    await this.redis.set(
      this.key(sample.sourceNodeId, sample.destinationNodeId, sample.transport),
      JSON.stringify(next),
      'PX',
      LINK_TTL_MS,
    );
    const t = transferOf(sample);
    if (t) {
      const key = this.outboundKey(sample.sourceNodeId, sample.transport);
      const [raw, recent] = await Promise.all([this.redis.get(key), this.redis.get(`${key}:recent`)]);
      const out = nextOutbound(
        raw ? (JSON.parse(raw) as NodeOutboundRecord) : undefined,
        recent ? (JSON.parse(recent) as OutboundTransfer[]) : [],
        t,
        { nodeId: sample.sourceNodeId, transport: sample.transport, at: sample.at },
      );
      await this.redis.set(`${key}:recent`, JSON.stringify(out.recent), 'PX', OUTBOUND_RECENT_MS);
      if (out.record) await this.redis.set(key, JSON.stringify(out.record), 'PX', LINK_TTL_MS);
    }
    return next;
  }
}

/** In process memory, for unit tests. */
export class InMemoryPairLinks extends PairLinks {
  private readonly records = new Map<string, PairLinkRecord>();
  private readonly outbounds = new Map<string, { record?: NodeOutboundRecord; recent: OutboundTransfer[] }>();

  outbound(source: string, transport: string): Promise<NodeOutboundRecord | undefined> {
    return Promise.resolve(this.outbounds.get(`${source}:${transport}`)?.record);
  }

  get(source: string, destination: string, transport: string): Promise<PairLinkRecord | undefined> {
    return Promise.resolve(this.records.get(`${source}->${destination}:${transport}`));
  }

  record(sample: PairLinkSample): Promise<PairLinkRecord> {
    const { startedAt: _startedAt, ...figure } = sample;
    const key = `${sample.sourceNodeId}->${sample.destinationNodeId}:${sample.transport}`;
    const next = nextLinkRecord(this.records.get(key), figure);
    this.records.set(key, next);
    const t = transferOf(sample);
    if (t) {
      const okey = `${sample.sourceNodeId}:${sample.transport}`;
      const prev = this.outbounds.get(okey);
      const out = nextOutbound(prev?.record, prev?.recent ?? [], t, {
        nodeId: sample.sourceNodeId,
        transport: sample.transport,
        at: sample.at,
      });
      this.outbounds.set(okey, { ...(out.record ? { record: out.record } : {}), recent: out.recent });
    }
    return Promise.resolve(next);
  }
}
