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

/**
 * GCP hangs are kept shorter than the provider's 60 s default: a hanging GET holds one SSH channel, and
 * when the watcher stops, the remote curl only ends at its own max-time.
 */
const GCP_HANG_SECONDS = 30;

/** One provider per watched node, reaching the node's metadata service through its SSH session. */
export function metadataProvider(
  shell: NodeShell,
  node: NodeTarget,
  spec: NodeMetadataSpec,
  opts: { pollIntervalMs: number },
): NoticeProvider {
  const client = new SshMetadataClient(shell, node, {
    baseUrl: spec.baseUrl ?? DEFAULT_METADATA_BASE_URL[spec.provider],
  });
  switch (spec.provider) {
    case 'aws':
      return new AwsImdsNoticeProvider({ nodeId: node.id, client, pollIntervalMs: opts.pollIntervalMs });
    case 'gcp':
      return new GcpMetadataNoticeProvider({ nodeId: node.id, client, hangTimeoutSec: GCP_HANG_SECONDS });
    case 'azure':
      return new AzureScheduledEventsNoticeProvider({
        nodeId: node.id,
        vmName: spec.vmName!,
        client,
        pollIntervalMs: opts.pollIntervalMs,
      });
  }
}
