export * from './models.js';
export * from './live-migration.js';
export * from './errors.js';
export * from './evacuation.js';
export * from './checkpoint.js';
export * from './workload-identity.js';
export * from './access.js';
export * from './events.js';
