/**
 * Podman's container operations as a pure typed layer: argv builders, and parsers of what Podman prints
 * (inspect, --print-stats, image load) with the verdict whether a container can move. No I/O: the engine's
 * node-operations layer runs these argvs on a node.
 */
export * from './errors.js';
export * from './argv.js';
export * from './inspect.js';
export * from './stats.js';
