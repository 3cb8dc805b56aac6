export * from './queues.js';
export * from './evacuation-jobs.js';
