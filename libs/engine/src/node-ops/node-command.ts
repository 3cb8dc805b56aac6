declare const brand: unique symbol;

/**
 * Shell text for a node. Only this layer's builders make one (with `nodeCommand`, which a lint rule keeps
 * inside libs/engine/src/node-ops), so `NodeOps.run` cannot be handed raw text by a strategy or an app: every
 * command a node runs is written, quoted and documented here, per kind of workload.
 */
export type NodeCommand = string & { readonly [brand]: true };

export const nodeCommand = (text: string): NodeCommand => text as NodeCommand;
