export * from './node-shell.port.js';
export * from './ssh-node-shell.js';
export * from './host-key.js';
export * from './directory-streamer.js';
// Shell quoting lives with the node commands (@spotlift/node-commands); kept here for transport's users.
export { shq, shellJoin } from '@spotlift/node-commands';
export * from './ssh-relay.js';
export * from './ssh-direct-tunnel.js';
export * from './pki/index.js';
export * from './tar-guard.js';
export * from './direct-stream.js';
