// Public API of @spotlift/notices: notice sources behind one port, their parsers, and deduplication.
// No Nest here: the app wires providers, the webhook controller and the deduplicator.
export * from './notice.js';
export * from './notice-problem.js';
export * from './notice-provider.port.js';
export * from './notice-source.error.js';
export * from './metadata-client.port.js';
export * from './http-metadata-client.adapter.js';
export * from './time-formats.js';
export * from './watch-notices.js';
export { abortableSleep } from './abortable-sleep.js';
export { DEFAULT_MAX_PAST_MS, type ParseContext } from './parse-context.js';

export * from './aws/aws-imds-parsers.js';
export * from './aws/imds-token-cache.js';
export * from './aws/aws-imds-provider.js';
export * from './aws/eventbridge-spot-event.js';

export * from './gcp/gcp-metadata-parsers.js';
export * from './gcp/gcp-metadata-provider.js';

export * from './azure/azure-scheduled-events-parser.js';
export * from './azure/azure-scheduled-events-provider.js';

export * from './k8s/kube-node-api.port.js';
export * from './k8s/kube-signals.js';
export * from './k8s/kube-node-notice-provider.js';
export * from './k8s/client-node-kube-api.adapter.js';

export * from './webhook/webhook-notice.schema.js';

export * from './dedup/dedup-store.port.js';
export * from './dedup/in-memory-dedup-store.js';
export * from './dedup/redis-dedup-store.js';
export * from './dedup/notice-deduplicator.js';

export * from './shards/watch-shards.js';
export * from './shards/watch-shard-keeper.js';
export * from './shards/watch-leases.js';
