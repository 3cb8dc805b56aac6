export * from './clock.js';
export * from './engine.types.js';
export * from './migration-engine.js';
export * from './node-ops.js';
export * from './node-prober.js';
export * from './phase-recorder.js';
