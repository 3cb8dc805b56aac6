/**
 * What the planner knows about each (source, destination) pair before it plans: the post-copy trial's stored
 * result (with its age) and the page throughput completed migrations measured over `tls`, the transport
 * evacuations use. A pair never measured keeps the fleet's figures; one never tried is `untested`.
 */
import type { NodeRecord } from '@spotlift/domain';
import type { PostCopyTrial } from '@spotlift/placement';
import type { PairLinks, PostCopyTrials } from '@spotlift/store';

export interface PairCapability {
  postCopyTrial: PostCopyTrial;
  /** When the trial ran (absent: never, or expired). */
  trialAt?: string;
  /** Measured page throughput, bytes/s (EWMA of completed migrations on this pair). */
  bandwidthBytesPerSec?: number;
}

/** The transport evacuations send pages over (EvacuationCoordinator.start). */
export const EVACUATION_TRANSPORT = 'tls';

/** Per destination id, as seen from `source`. Reads that fail leave the pair unknown: planning never waits on them. */
export async function pairCapabilities(
  source: NodeRecord,
  nodes: readonly NodeRecord[],
  trials: PostCopyTrials | undefined,
  links: PairLinks | undefined,
): Promise<Record<string, PairCapability>> {
  const out: Record<string, PairCapability> = {};
  await Promise.all(
    nodes
      .filter((n) => n.id !== source.id)
      .map(async (n) => {
        const [trial, link] = await Promise.all([
          trials?.get(source.id, n.id).catch(() => undefined),
          links?.get(source.id, n.id, EVACUATION_TRANSPORT).catch(() => undefined),
        ]);
        out[n.id] = {
          postCopyTrial: trial ? (trial.ok ? 'ok' : 'failed') : 'untested',
          ...(trial ? { trialAt: trial.at } : {}),
          ...(link ? { bandwidthBytesPerSec: link.bytesPerSec } : {}),
        };
      }),
  );
  return out;
}
