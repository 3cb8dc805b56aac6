export * from './scripted-node-shell.js';
export * from './builders.js';
export * from './lab/index.js';
export * from './fakes/index.js';
export * from './scripted-preflight.js';
export * from './scripted-live-criu.js';
export * from './test-certificates.js';
export * from './scripted-inspection.js';
