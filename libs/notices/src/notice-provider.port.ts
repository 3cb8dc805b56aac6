import type { Notice, NoticeSource } from './notice.js';
import type { NoticeBatch, NoticeProblem } from './notice-problem.js';

/** Where a running provider delivers what it sees. Both callbacks may be called many times. */
export interface NoticeSink {
  /** A validated notice. Not yet deduplicated: see `NoticeDeduplicator` / `watchNotices`. */
  notice(notice: Notice): void | Promise<void>;
  /** An observation that raised nothing, with the reason. */
  problem(problem: NoticeProblem): void;
  /**
   * A polling provider's poll ended, with how many problems it reported: a poll without any ends a failure
   * streak (watchNotices then says the source recovered). Providers that do not poll never call it.
   */
  polled?(problems: number): void;
}

/**
 * Port: one notice source for one node (or, for Kubernetes, one cluster). `watch` runs until the signal
 * aborts and never throws for source errors: those become problems and the provider retries by itself.
 */
export interface NoticeProvider {
  readonly source: NoticeSource;
  watch(sink: NoticeSink, signal: AbortSignal): Promise<void>;
}

/** A provider that can also be asked once, e.g. from a scheduled job or over an SSH session. */
export interface PollingNoticeProvider extends NoticeProvider {
  /** Reads the source once; never throws for source errors (they come back as problems). */
  poll(signal?: AbortSignal): Promise<NoticeBatch>;
}
