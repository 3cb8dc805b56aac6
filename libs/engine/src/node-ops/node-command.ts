/**
 * The node-command brand lives in @spotlift/node-commands (libs/transport's own commands are written there
 * too, since transport cannot import the engine); inside the engine it is made here only (a lint rule).
 */
export { type NodeCommand, nodeCommand } from '@spotlift/node-commands';
