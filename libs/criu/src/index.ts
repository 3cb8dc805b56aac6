/**
 * @spotlift/criu: everything spotlift knows about CRIU's command line and outputs, as pure functions.
 * No I/O here: callers run the argv, read the files and pass the bytes or text in.
 */
export * from './errors.js';
export * from './argv.js';
export * from './stats.js';
export * from './version.js';
export * from './outputs.js';
export * from './images/index.js';
