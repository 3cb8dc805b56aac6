import type { Notice, NoticeSource } from './notice.js';

/**
 * Why an observation raised no notice. Codes are stable (metrics, tests); messages are for people.
 * - `unauthorized`: 401/403 from the metadata service (IMDSv2 token refused, header missing).
 * - `unavailable`: 503 or another 5xx; retried on the next poll.
 * - `http_status`: any other unexpected status.
 * - `transport`: the request did not complete (connection refused, reset, timeout).
 * - `malformed_json`: the body is not JSON where JSON is documented.
 * - `invalid_payload`: well-formed but not the documented shape (missing field, wrong type, bad date).
 * - `unknown_action`: a value outside the documented enum (AWS action, Azure EventType, GCP value).
 * - `stale`: the deadline is already in the past (AWS keeps an old `time` if termination failed).
 * - `wrong_server`: the answer did not come from the expected service (e.g. no `Metadata-Flavor: Google`).
 * - `watch`: a Kubernetes list/watch failure (the watcher relists or reconnects by itself).
 */
export type NoticeProblemCode =
  | 'unauthorized'
  | 'unavailable'
  | 'http_status'
  | 'transport'
  | 'malformed_json'
  | 'invalid_payload'
  | 'unknown_action'
  | 'stale'
  | 'wrong_server'
  | 'watch';

/** A bad or failed observation: reported, never acted on. */
export interface NoticeProblem {
  source: NoticeSource;
  /** The node the observation was about, when known. */
  nodeId?: string;
  code: NoticeProblemCode;
  /** One line a person can act on, e.g. "GET /latest/meta-data/spot/instance-action: 503 from IMDS". */
  message: string;
  /** The metadata path or Kubernetes resource that was read. */
  path?: string;
  status?: number;
  /** At most 500 characters of the offending body, for the log. */
  bodyExcerpt?: string;
  at: Date;
}

/** What one poll (or one change) produced: notices to act on and problems to report. */
export interface NoticeBatch {
  notices: Notice[];
  problems: NoticeProblem[];
}

/** Caps a body for logging: payloads are untrusted and can be large. */
export function excerpt(body: string, max = 500): string {
  return body.length <= max ? body : `${body.slice(0, max)}…(${body.length - max} more chars)`;
}
