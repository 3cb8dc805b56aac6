/**
 * A counting semaphore for the session channels of one SSH connection. sshd refuses channels past its
 * MaxSessions (10 by default) with a bare "open failed", which used to surface as "node cannot be reached";
 * so the shell opens at most `limit` at once and queues the rest in arrival order. Pure: no I/O.
 */
export class ChannelSlots {
  private open = 0;
  private readonly waiting: Array<{ grant: (release: () => void) => void; fail: (error: Error) => void }> = [];
  private failedWith: Error | undefined;

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`channel limit must be a positive integer: ${limit}`);
  }

  get inUse(): number {
    return this.open;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Resolves with a release function once a slot is free (FIFO). The release is idempotent: channels report
   * their end more than once on some failure paths, and a double release would let one channel too many in.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.failedWith) return Promise.reject(this.failedWith);
    if (this.open < this.limit) {
      this.open++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((grant, fail) => {
      const waiter = { grant, fail };
      this.waiting.push(waiter);
      // A waiter that gives up (its deadline passed) leaves the queue; one already granted keeps its slot.
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiting.indexOf(waiter);
          if (i < 0) return;
          this.waiting.splice(i, 1);
          fail(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
        },
        { once: true },
      );
    });
  }

  /** The connection is gone: every waiter, and every later acquire, fails with `error`. */
  failAll(error: Error): void {
    this.failedWith = error;
    for (const w of this.waiting.splice(0)) w.fail(error);
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so a newcomer cannot overtake the queue.
      if (next) next.grant(this.releaser());
      else this.open--;
    };
  }
}
