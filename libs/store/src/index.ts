export * from './repositories.port.js';
export * from './redis-repository.js';
export * from './in-memory-records.js';
