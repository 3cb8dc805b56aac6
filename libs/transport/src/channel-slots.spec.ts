import { ChannelSlots } from './channel-slots.js';

/** Lets granted acquisitions run their continuations. */
const flush = () => new Promise((r) => setImmediate(r));

describe('ChannelSlots', () => {
  it('grants up to the limit at once and queues the rest in arrival order', async () => {
    const slots = new ChannelSlots(2);
    const order: number[] = [];
    const releases: (() => void)[] = [];
    for (let i = 0; i < 5; i++) {
      void slots.acquire().then((release) => {
        order.push(i);
        releases.push(release);
      });
    }
    await flush();
    expect(order).toEqual([0, 1]);
    expect([slots.inUse, slots.queued]).toEqual([2, 3]);
    releases[1]!();
    await flush();
    expect(order).toEqual([0, 1, 2]);
    releases[0]!();
    releases[2]!();
    await flush();
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect([slots.inUse, slots.queued]).toEqual([2, 0]);
    releases[3]!();
    releases[4]!();
    expect(slots.inUse).toBe(0);
  });

  it('counts a release once however often it is called', async () => {
    const slots = new ChannelSlots(1);
    const release = await slots.acquire();
    const waiting = [slots.acquire(), slots.acquire()];
    release();
    release();
    await flush();
    expect([slots.inUse, slots.queued]).toEqual([1, 1]);
    (await waiting[0]!)();
    (await waiting[1]!)();
    expect(slots.inUse).toBe(0);
  });

  it('a newcomer does not overtake the queue when a slot frees up', async () => {
    const slots = new ChannelSlots(1);
    const first = await slots.acquire();
    const got: string[] = [];
    void slots.acquire().then(() => got.push('queued'));
    first();
    void slots.acquire().then(() => got.push('newcomer'));
    await flush();
    expect(got).toEqual(['queued']);
  });

  it('a waiter whose signal aborts leaves the queue; a granted one keeps its slot', async () => {
    const slots = new ChannelSlots(1);
    const held = await slots.acquire();
    const giveUp = new AbortController();
    const abandoned = slots.acquire(giveUp.signal);
    const patient = slots.acquire();
    giveUp.abort(new Error('waited too long'));
    await expect(abandoned).rejects.toThrow('waited too long');
    expect(slots.queued).toBe(1);
    held();
    const release = await patient;
    expect(slots.inUse).toBe(1);
    release();
    expect(slots.inUse).toBe(0);
  });

  it('fails every waiter and every later acquire once the connection is gone', async () => {
    const slots = new ChannelSlots(1);
    await slots.acquire();
    const waiting = slots.acquire();
    slots.failAll(new Error('connection lost'));
    await expect(waiting).rejects.toThrow('connection lost');
    await expect(slots.acquire()).rejects.toThrow('connection lost');
  });

  it('refuses a limit below one', () => {
    expect(() => new ChannelSlots(0)).toThrow(/positive integer/);
  });
});
