import type { NodeTarget } from '@spotlift/domain';
import {
  AwsImdsNoticeProvider,
  AzureScheduledEventsNoticeProvider,
  GcpMetadataNoticeProvider,
  type NoticeProvider,
} from '@spotlift/notices';
import type { NodeShell } from '@spotlift/transport';
import type { NodeMetadataSpec } from '../config/evacuation-config.js';
import { DEFAULT_METADATA_BASE_URL, SshMetadataClient } from './ssh-metadata-client.adapter.js';
import { StreamingMetadataClient } from './ssh-metadata-watch.adapter.js';

/**
 * GCP hangs are kept shorter than the provider's 60 s default: a hanging GET holds one SSH channel, and
 * when the watcher stops, the remote curl only ends at its own max-time.
 */
const GCP_HANG_SECONDS = 30;

/**
 * One node's watch signal: aborted by the shutdown or by the node's own stop. AbortSignal.any registers no
 * listener on its sources, so the listeners each node's watch adds (its client's close, its sleeps) sit on
 * this signal, not on the shutdown's: passing the shutdown signal itself to every node warned
 * MaxListenersExceeded past 10 watched nodes (the watch bench did).
 */
export function nodeWatchSignal(shutdown: AbortSignal, stop: AbortSignal): AbortSignal {
  return AbortSignal.any([shutdown, stop]);
}

/**
 * One provider per watched node, reaching the node's metadata service through its SSH session: in `stream`
 * mode AWS and Azure polls are answered by one long-lived loop on the node (ssh-metadata-watch.adapter.ts),
 * in `exec` mode by one curl exec per request. GCP's hanging GET holds one channel either way. The loop
 * ends when `signal` (the node's own: nodeWatchSignal) aborts.
 */
export function metadataProvider(
  shell: NodeShell,
  node: NodeTarget,
  spec: NodeMetadataSpec,
  opts: { pollIntervalMs: number; mode: 'stream' | 'exec'; signal: AbortSignal },
): NoticeProvider {
  const baseUrl = spec.baseUrl ?? DEFAULT_METADATA_BASE_URL[spec.provider];
  const exec = new SshMetadataClient(shell, node, { baseUrl });
  let client: SshMetadataClient | StreamingMetadataClient = exec;
  if (opts.mode === 'stream' && spec.provider !== 'gcp') {
    const streaming = new StreamingMetadataClient(shell, node, baseUrl, exec, { intervalMs: opts.pollIntervalMs });
    opts.signal.addEventListener('abort', () => streaming.close(), { once: true });
    client = streaming;
  }
  switch (spec.provider) {
    case 'aws':
      return new AwsImdsNoticeProvider({ nodeId: node.id, client, pollIntervalMs: opts.pollIntervalMs });
    case 'gcp':
      return new GcpMetadataNoticeProvider({ nodeId: node.id, client: exec, hangTimeoutSec: GCP_HANG_SECONDS });
    case 'azure':
      return new AzureScheduledEventsNoticeProvider({
        nodeId: node.id,
        vmName: spec.vmName!,
        client,
        pollIntervalMs: opts.pollIntervalMs,
      });
  }
}
