import { DomainError } from '@spotlift/domain';

/**
 * A command to a notice source failed or was refused (e.g. acknowledging an Azure event that is not
 * ours). Observations never throw this: they report problems instead.
 */
export class NoticeSourceError extends DomainError {
  constructor(code: string, message: string, meta: Record<string, unknown> = {}, retryable = false) {
    super(code, message, meta, retryable);
  }
}
