export * from './queues.js';
export * from './evacuation-jobs.js';
export * from './checkpoint-jobs.js';
