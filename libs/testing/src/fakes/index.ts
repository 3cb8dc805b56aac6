// Fakes of the metadata services and the Kubernetes API: real HTTP servers on loopback for int tests.
export * from './fake-http-server.js';
export * from './fake-imds-server.js';
export * from './fake-gcp-metadata-server.js';
export * from './fake-azure-scheduled-events-server.js';
export * from './fake-kubernetes-api-server.js';
export * from './recording-notice-sink.js';
