declare const brand: unique symbol;

/**
 * Shell text for a node. Only the node-commands layer makes one (with `nodeCommand`, which a lint rule keeps
 * inside libs/engine/src/node-ops and this lib), so `NodeOps.run` cannot be handed raw text by a strategy or an
 * app: every command a node runs is written, quoted and documented in one of those two places.
 */
export type NodeCommand = string & { readonly [brand]: true };

export const nodeCommand = (text: string): NodeCommand => text as NodeCommand;
