import { DomainError } from '@spotlift/domain';

/**
 * A CRIU command could not be built: a value is out of range, ambiguous on CRIU's command line, or the
 * options combine in a way CRIU rejects or would silently misread. Thrown before anything runs, so
 * nothing on a node has been touched.
 */
export class CriuArgError extends DomainError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('criu_bad_argument', message, meta);
  }
}

/**
 * A CRIU image file (stats-dump, stats-restore) is not what it should be: empty, truncated, of another
 * kind, or its protobuf payload does not decode. The message says what was found and what to check.
 */
export class CriuImageError extends DomainError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('criu_bad_image', message, meta);
  }
}

/** Text printed by a CRIU command (`--version`, `check`) does not have the expected shape. */
export class CriuOutputError extends DomainError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('criu_bad_output', message, meta);
  }
}
