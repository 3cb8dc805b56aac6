import type { Notice, NoticeProblem, NoticeSink } from '@spotlift/notices';

/**
 * Fake {@link NoticeSink}: records what a provider delivers, with arrival times, and lets a test wait for
 * a notice or problem matching a predicate.
 */
export class RecordingNoticeSink implements NoticeSink {
  readonly notices: { notice: Notice; at: number }[] = [];
  readonly problems: NoticeProblem[] = [];
  private readonly waiters = new Set<() => void>();

  notice(notice: Notice): void {
    this.notices.push({ notice, at: Date.now() });
    this.wake();
  }

  problem(problem: NoticeProblem): void {
    this.problems.push(problem);
    this.wake();
  }

  /** Resolves with the first notice (already recorded or future) matching `pred`; rejects after `timeoutMs`. */
  waitForNotice(
    pred: (n: Notice, at: number) => boolean = () => true,
    timeoutMs = 2_000,
  ): Promise<{ notice: Notice; at: number }> {
    return this.waitFor(() => this.notices.find((r) => pred(r.notice, r.at)), timeoutMs, 'notice');
  }

  /** Resolves with the first problem matching `pred`; rejects after `timeoutMs`. */
  waitForProblem(pred: (p: NoticeProblem) => boolean = () => true, timeoutMs = 2_000): Promise<NoticeProblem> {
    return this.waitFor(() => this.problems.find(pred), timeoutMs, 'problem');
  }

  private waitFor<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const hit = find();
        if (hit === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        const seen = this.problems.map((p) => `${p.code}: ${p.message}`).join('\n  ');
        reject(
          new Error(
            `no matching ${what} within ${timeoutMs} ms (${this.notices.length} notices; problems:\n  ${seen})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
