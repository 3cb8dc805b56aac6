/**
 * Domain errors: a stable code, a message a person can act on, and metadata that is safe to log.
 * The HTTP filter maps codes to statuses; the worker decides retry vs UnrecoverableError from `retryable`.
 */
export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly meta: Record<string, unknown> = {},
    /** True when trying again later may succeed (network blips), false when it cannot. */
    readonly retryable = false,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends DomainError {
  constructor(kind: string, id: string) {
    super('not_found', `${kind} '${id}' does not exist`, { kind, id });
  }
}

export class BadRequestError extends DomainError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('bad_request', message, meta);
  }
}

export class ConflictError extends DomainError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('conflict', message, meta);
  }
}

export class NodeUnreachableError extends DomainError {
  constructor(nodeId: string, cause: string) {
    super('node_unreachable', `node '${nodeId}' cannot be reached over SSH: ${cause}`, { nodeId }, true);
  }
}

export class HostKeyMismatchError extends DomainError {
  constructor(nodeId: string, presented: string) {
    super(
      'host_key_mismatch',
      `node '${nodeId}' presented host key ${presented}, which is not the pinned key; refusing to connect`,
      { nodeId, presented },
    );
  }
}
