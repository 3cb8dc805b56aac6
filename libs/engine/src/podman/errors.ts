import { DomainError } from '@spotlift/domain';

/**
 * A Podman command could not be built: a container or image reference Podman would misread (or read as an
 * option), a relative path, or options Podman rejects together. Thrown before anything runs on a node.
 */
export class PodmanArgError extends DomainError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('podman_bad_argument', message, meta);
  }
}

/** Text printed by a Podman command (inspect JSON, --print-stats, image load) does not have the expected shape. */
export class PodmanOutputError extends DomainError {
  constructor(message: string, meta: Record<string, unknown> = {}) {
    super('podman_bad_output', message, meta);
  }
}
