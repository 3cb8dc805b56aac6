import { ApiError, UnreachableError } from './api-client.js';

/**
 * What `spotlift` exits with, so scripts can tell a refused request from a failed move (README "CLI").
 * A migration's end state maps onto them too (`migrate` waits for it).
 */
export const EXIT = {
  ok: 0,
  /** The work failed (a migration or checkpoint failed, an evacuation missed workloads), or the server erred (5xx). */
  failed: 1,
  /** Refused as asked: bad arguments, or the server answered 400, 404 or 409. Nothing was changed. */
  badInput: 2,
  /** The migration rolled back: the workload runs on its source as before. */
  rolledBack: 3,
  /** The migration was cancelled. */
  cancelled: 4,
  /** No token, or the server refused it (401) or its role (403). */
  denied: 5,
  /** The orchestrator could not be reached (connection refused, DNS, TLS, timeout). */
  unreachable: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class UsageError extends Error {}
export class NoTokenError extends Error {}

export function exitCodeOfError(error: unknown): ExitCode {
  if (error instanceof ApiError) {
    if (error.status === 401 || error.status === 403) return EXIT.denied;
    if (error.status >= 400 && error.status < 500) return EXIT.badInput;
    return EXIT.failed;
  }
  if (error instanceof UnreachableError) return EXIT.unreachable;
  if (error instanceof NoTokenError) return EXIT.denied;
  if (error instanceof UsageError) return EXIT.badInput;
  const code = (error as { code?: unknown } | undefined)?.code;
  // commander's own parse errors (unknown option, missing argument ...)
  if (typeof code === 'string' && code.startsWith('commander.')) return EXIT.badInput;
  return EXIT.failed;
}

export function exitCodeOfMigration(state: string): ExitCode {
  switch (state) {
    case 'completed':
      return EXIT.ok;
    case 'rolled_back':
      return EXIT.rolledBack;
    case 'cancelled':
      return EXIT.cancelled;
    default:
      return EXIT.failed;
  }
}
