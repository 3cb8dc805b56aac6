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
  const others = nodes.filter((n) => n.id !== source.id).map((n) => n.id);
  const none = () => others.map(() => undefined);
  // Two reads in all for the source's pairs (one MGET each in Redis), not two per pair; unknown when they fail.
  const [trialOf, linkOf] = await Promise.all([
    trials ? trials.getMany(source.id, others).catch(none) : none(),
    links ? links.getMany(source.id, others, EVACUATION_TRANSPORT).catch(none) : none(),
  ]);
  others.forEach((id, i) => {
    const [trial, link] = [trialOf[i], linkOf[i]];
    out[id] = {
      postCopyTrial: trial ? (trial.ok ? 'ok' : 'failed') : 'untested',
      ...(trial ? { trialAt: trial.at } : {}),
      ...(link ? { bandwidthBytesPerSec: link.bytesPerSec } : {}),
    };
  });
  return out;
}
