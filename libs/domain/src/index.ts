export * from './models.js';
export * from './errors.js';
