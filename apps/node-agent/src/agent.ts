/**
 * The node agent's loop: watch this node's cloud metadata with the same providers the orchestrator uses,
 * and relay each new notice to the orchestrator's `POST /notices`.
 */
import {
  AwsImdsNoticeProvider,
  AzureScheduledEventsNoticeProvider,
  GcpMetadataNoticeProvider,
  HttpMetadataClient,
  InMemoryDedupStore,
  NoticeDeduplicator,
  watchNotices,
  type NoticeProvider,
} from '@spotlift/notices';
import type { AgentConfig } from './agent-config.js';
import { NoticePusher } from './notice-pusher.js';

export function providerFor(config: AgentConfig): NoticeProvider {
  const client = new HttpMetadataClient({ baseUrl: config.metadataUrl });
  const nodeId = config.nodeId;
  switch (config.cloud) {
    case 'aws':
      return new AwsImdsNoticeProvider({ nodeId, client });
    case 'gcp':
      return new GcpMetadataNoticeProvider({ nodeId, client });
    case 'azure':
      return new AzureScheduledEventsNoticeProvider({ nodeId, client, vmName: config.azureVmName! });
  }
}

export async function runAgent(config: AgentConfig, signal: AbortSignal): Promise<void> {
  const pusher = new NoticePusher(config.orchestratorUrl, config.token, undefined, config.ca);
  const log = (o: object) => console.log(JSON.stringify({ time: new Date().toISOString(), node: config.nodeId, ...o }));
  log({ msg: 'watching', cloud: config.cloud, metadata: config.metadataUrl });
  await watchNotices(providerFor(config), {
    dedup: new NoticeDeduplicator(new InMemoryDedupStore()),
    signal,
    onNotice: async (notice) => {
      log({ msg: 'notice', kind: notice.kind, deadline: notice.deadline.toISOString(), key: notice.dedupKey });
      log({ msg: (await pusher.push(notice)) ? 'notice delivered' : 'notice NOT delivered', key: notice.dedupKey });
    },
    onProblem: (p, repeats) => log({ msg: 'problem', code: p.code, detail: p.message, repeats }),
  });
}
