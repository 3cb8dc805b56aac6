import { sharedRead, sharedReadBy } from './shared-read.js';

/** A read whose answers the test releases one by one. */
function gatedRead() {
  const pending: Array<(v: number) => void> = [];
  let calls = 0;
  const read = () =>
    new Promise<number>((resolve) => {
      calls++;
      pending.push(resolve);
    });
  return { read, release: (v: number) => pending.shift()!(v), calls: () => calls };
}

describe('sharedRead', () => {
  it('callers asking while a read is under way share it; the next caller reads again', async () => {
    const g = gatedRead();
    const shared = sharedRead(g.read);
    const a = shared();
    const b = shared();
    expect(g.calls()).toBe(1);
    g.release(1);
    expect(await a).toBe(1);
    expect(await b).toBe(1);
    const c = shared();
    expect(g.calls()).toBe(2);
    g.release(2);
    expect(await c).toBe(2);
  });

  it('with a max age, answers from the last read until it is that old (from when the read started)', async () => {
    let now = 1_000;
    const g = gatedRead();
    const shared = sharedRead(g.read, 500, () => now);
    const first = shared();
    now = 1_200; // the read takes 200 ms
    g.release(1);
    await first;
    now = 1_499;
    expect(await shared()).toBe(1);
    expect(g.calls()).toBe(1);
    now = 1_500;
    const again = shared();
    expect(g.calls()).toBe(2);
    g.release(2);
    expect(await again).toBe(2);
  });

  it('does not keep a failed read: the next caller reads again', async () => {
    let fail = true;
    const shared = sharedRead(() => (fail ? Promise.reject(new Error('redis away')) : Promise.resolve(3)), 60_000);
    await expect(shared()).rejects.toThrow('redis away');
    fail = false;
    expect(await shared()).toBe(3);
  });
});

describe('sharedReadBy', () => {
  it('one read per key within the max age (under way or done); other keys read on their own', async () => {
    let now = 0;
    const calls: string[] = [];
    const read = sharedReadBy(
      (n: { id: string }) => n.id,
      (n) => {
        calls.push(n.id);
        return Promise.resolve(`${n.id}@${now}`);
      },
      2_000,
      () => now,
    );
    const [a1, a2, b1] = await Promise.all([read({ id: 'a' }), read({ id: 'a' }), read({ id: 'b' })]);
    expect([a1, a2, b1]).toEqual(['a@0', 'a@0', 'b@0']);
    now = 1_999;
    expect(await read({ id: 'a' })).toBe('a@0');
    now = 2_000;
    expect(await read({ id: 'a' })).toBe('a@2000');
    expect(calls).toEqual(['a', 'b', 'a']);
  });

  it('does not keep a failed read, and drops stale keys past its bound', async () => {
    let now = 0;
    let fail = true;
    let calls = 0;
    const read = sharedReadBy(
      (k: string) => k,
      () => {
        calls++;
        return fail ? Promise.reject(new Error('no answer')) : Promise.resolve(calls);
      },
      1_000,
      () => now,
      2,
    );
    await expect(read('a')).rejects.toThrow('no answer');
    fail = false;
    expect(await read('a')).toBe(2);
    expect(await read('b')).toBe(3);
    now = 5_000;
    // Two keys kept, both stale: a third key drops them, and 'a' is read again.
    expect(await read('c')).toBe(4);
    expect(await read('a')).toBe(5);
  });
});
