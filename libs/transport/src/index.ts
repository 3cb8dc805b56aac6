export * from './node-shell.port.js';
export * from './ssh-node-shell.js';
export * from './host-key.js';
export * from './directory-streamer.js';
export * from './shell.js';
export * from './ssh-relay.js';
export * from './ssh-direct-tunnel.js';
export * from './pki/index.js';
