export * from './repositories.port.js';
export * from './redis-repository.js';
export * from './in-memory-records.js';
export * from './evacuation-repository.js';
export * from './migration-flags.js';
export * from './post-copy-trials.js';
export * from './checkpoint-repository.js';
export * from './pair-links.js';
