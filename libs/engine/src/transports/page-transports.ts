import type { Transport } from '@spotlift/domain';
import { MigrationStepError } from '../engine.types.js';
import { TcpPageTransport } from './tcp-page-transport.js';
import type { PageTransport } from './page-transport.port.js';

/** The page transports this engine was built with; strategies pick the one a migration asked for. */
export class PageTransports {
  private readonly byName = new Map<Transport, PageTransport>();

  constructor(transports: readonly PageTransport[]) {
    for (const t of transports) this.byName.set(t.name, t);
    if (!this.byName.has('tcp')) this.byName.set('tcp', new TcpPageTransport());
  }

  /** The named transport; a missing one fails the job before any freeze, with what is available. */
  pick(name: Transport | undefined): PageTransport {
    const t = this.byName.get(name ?? 'tcp');
    if (!t) {
      throw new MigrationStepError(
        'prepare',
        `page transport '${name}' is not configured on this orchestrator (available: ${[...this.byName.keys()].join(', ')})`,
        true,
      );
    }
    return t;
  }
}
