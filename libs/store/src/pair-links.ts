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

/**
 * Page throughput measured per node pair and transport (source -> destination), fed by every completed
 * migration and read by `auto` instead of an assumed figure. Shared by every worker through Redis.
 */
export abstract class PairLinks {
  abstract get(source: string, destination: string, transport: string): Promise<PairLinkRecord | undefined>;
  abstract record(sample: Omit<PairLinkRecord, 'samples'>): Promise<PairLinkRecord>;

  /** One source's records towards each destination, in order. */
  getMany(source: string, destinations: readonly string[], transport: string): Promise<(PairLinkRecord | undefined)[]> {
    return Promise.all(destinations.map((d) => this.get(source, d, transport)));
  }
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

  /** One MGET for every destination (see RedisPostCopyTrials.getMany). */
  override async getMany(
    source: string,
    destinations: readonly string[],
    transport: string,
  ): Promise<(PairLinkRecord | undefined)[]> {
    if (!destinations.length) return [];
    const raws = await this.redis.mget(...destinations.map((d) => this.key(source, d, transport)));
    return raws.map((raw) => (raw ? (JSON.parse(raw) as PairLinkRecord) : undefined));
  }

  /** Read, fold in, write: two workers finishing on one pair at once may lose one sample, which is harmless. */
  async record(sample: Omit<PairLinkRecord, 'samples'>): Promise<PairLinkRecord> {
    const next = nextLinkRecord(
      await this.get(sample.sourceNodeId, sample.destinationNodeId, sample.transport),
      sample,
    );
    await this.redis.set(
      this.key(sample.sourceNodeId, sample.destinationNodeId, sample.transport),
      JSON.stringify(next),
      'PX',
      LINK_TTL_MS,
    );
    return next;
  }
}

/** In process memory, for unit tests. */
export class InMemoryPairLinks extends PairLinks {
  private readonly records = new Map<string, PairLinkRecord>();

  get(source: string, destination: string, transport: string): Promise<PairLinkRecord | undefined> {
    return Promise.resolve(this.records.get(`${source}->${destination}:${transport}`));
  }

  record(sample: Omit<PairLinkRecord, 'samples'>): Promise<PairLinkRecord> {
    const key = `${sample.sourceNodeId}->${sample.destinationNodeId}:${sample.transport}`;
    const next = nextLinkRecord(this.records.get(key), sample);
    this.records.set(key, next);
    return Promise.resolve(next);
  }
}
