/**
 * Node commands that libs/transport runs (it cannot import the engine, which imports it), with the brand and
 * the quoting every node command uses. The engine's own commands are in libs/engine/src/node-ops; both are
 * golden-tested in its node-commands.golden.spec.ts.
 */
export * from './node-command.js';
export * from './shell.js';
export * from './stream-commands.js';
export * from './tunnel-commands.js';
export * from './certificate-commands.js';
export * from './direct-stream-commands.js';
