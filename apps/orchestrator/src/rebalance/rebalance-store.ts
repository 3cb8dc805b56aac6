/**
 * Rebalancing's records in Redis: plans (a bounded list, newest first), the moves started (a sorted set the
 * budgets read: per hour, per workload), the one-time apply claim of each plan, a cancel flag, and the tick
 * claim that makes one replica evaluate per schedule tick.
 */
import type { Redis } from 'ioredis';
import type { RebalancePlanRecord } from '@spotlift/domain';
import type { MoveStart } from '@spotlift/placement';

// The plan's shapes are the domain's (the CLI prints the same ones).
export type { MoveState, PlanMove, PlanState, RebalancePlanRecord } from '@spotlift/domain';

const WEEK_MS = 7 * 86_400_000;
const MAX_EVENTS = 100;

export function addPlanEvent(plan: RebalancePlanRecord, at: Date, msg: string): void {
  plan.events.push({ at: at.toISOString(), msg });
  if (plan.events.length > MAX_EVENTS) plan.events.splice(0, plan.events.length - MAX_EVENTS);
}

/** The store's port (the service's unit specs pass an in-memory one). */
export abstract class RebalanceStore {
  abstract save(plan: RebalancePlanRecord): Promise<void>;
  abstract add(plan: RebalancePlanRecord, keep: number): Promise<void>;
  abstract get(id: string): Promise<RebalancePlanRecord | undefined>;
  abstract list(): Promise<RebalancePlanRecord[]>;
  abstract claimApply(id: string, owner: string): Promise<boolean>;
  abstract holdLease(id: string, ttlMs: number): Promise<void>;
  abstract leaseHeld(id: string): Promise<boolean>;
  abstract requestCancel(id: string): Promise<void>;
  abstract cancelRequested(id: string): Promise<boolean>;
  abstract claimTick(slot: number, ttlMs: number): Promise<boolean>;
  abstract recordStart(start: MoveStart & { migrationId: string }): Promise<void>;
  abstract history(): Promise<MoveStart[]>;
}

export class RedisRebalanceStore extends RebalanceStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
  }

  private key(...parts: string[]): string {
    return [this.prefix, 'rebalance', ...parts].join(':');
  }

  async save(plan: RebalancePlanRecord): Promise<void> {
    await this.redis.set(this.key('plan', plan.id), JSON.stringify(plan));
  }

  /** Stores a new plan and drops the oldest beyond `keep`. */
  async add(plan: RebalancePlanRecord, keep: number): Promise<void> {
    await this.save(plan);
    await this.redis.lpush(this.key('plans'), plan.id);
    const dropped = await this.redis.lrange(this.key('plans'), keep, -1);
    if (dropped.length) {
      await this.redis.ltrim(this.key('plans'), 0, keep - 1);
      await this.redis.del(...dropped.map((id) => this.key('plan', id)));
    }
  }

  async get(id: string): Promise<RebalancePlanRecord | undefined> {
    const raw = await this.redis.get(this.key('plan', id));
    return raw ? (JSON.parse(raw) as RebalancePlanRecord) : undefined;
  }

  async list(): Promise<RebalancePlanRecord[]> {
    const ids = await this.redis.lrange(this.key('plans'), 0, -1);
    const plans = await Promise.all(ids.map((id) => this.get(id)));
    return plans.filter((p): p is RebalancePlanRecord => p !== undefined);
  }

  /** True for the one caller that may apply the plan (kept a week: a plan is applied at most once). */
  async claimApply(id: string, owner: string): Promise<boolean> {
    return (await this.redis.set(this.key('applied', id), owner, 'PX', WEEK_MS, 'NX')) === 'OK';
  }

  /** The applying process refreshes this lease; a plan `applying` without it lost its process. */
  async holdLease(id: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.key('lease', id), '1', 'PX', ttlMs);
  }

  async leaseHeld(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key('lease', id))) === 1;
  }

  async requestCancel(id: string): Promise<void> {
    await this.redis.set(this.key('cancel', id), '1', 'PX', WEEK_MS);
  }

  async cancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key('cancel', id))) === 1;
  }

  /** True for the one replica that evaluates in this tick. */
  async claimTick(slot: number, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.key('tick', String(slot)), '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async recordStart(start: MoveStart & { migrationId: string }): Promise<void> {
    const key = this.key('moves');
    await this.redis.zadd(key, start.at, `${start.workloadId}|${start.migrationId}`);
    await this.redis.zremrangebyscore(key, '-inf', start.at - WEEK_MS);
  }

  async history(): Promise<MoveStart[]> {
    const raw = await this.redis.zrange(this.key('moves'), 0, -1, 'WITHSCORES');
    const out: MoveStart[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2)
      out.push({ workloadId: raw[i]!.split('|')[0]!, at: Number(raw[i + 1]) });
    return out;
  }
}
