// A local, type-aware ESLint rule: the runners of the node-operations layer (`run`, `runTimed`, `armTimed`,
// `stream`, `streamIn` of NodeOps / ProcessNodeOps, which take any NodeCommand) are called inside libs/engine/src/node-ops
// only. Everyone else calls a named operation (`dump`, `restore`, `inspectTree`, `freeSpace`...), so the
// commands a strategy can make a node run are the ones that layer names. The check is by declaration, not by
// variable name: `const o = this.ops; o.run(...)` is refused too.
const RUNNERS = new Set(['run', 'runTimed', 'armTimed', 'stream', 'streamIn']);
const LAYER = /[\\/]libs[\\/]engine[\\/]src[\\/]node-ops[\\/]/;

export default {
  meta: {
    type: 'problem',
    docs: { description: 'node commands run through named operations of libs/engine/src/node-ops only' },
    messages: {
      runner:
        "'{{name}}' runs a raw node command: call a named operation of libs/engine/src/node-ops instead (add one there if it is missing)",
    },
    schema: [],
  },
  create(context) {
    const services = context.sourceCode.parserServices;
    if (!services?.program || LAYER.test(context.filename)) return {};
    const checker = services.program.getTypeChecker();
    return {
      'CallExpression > MemberExpression.callee'(node) {
        if (node.property.type !== 'Identifier' || !RUNNERS.has(node.property.name)) return;
        const symbol = checker.getSymbolAtLocation(services.esTreeNodeToTSNodeMap.get(node.property));
        const declared = (symbol?.declarations ?? []).some((d) => LAYER.test(d.getSourceFile().fileName));
        if (declared) context.report({ node, messageId: 'runner', data: { name: node.property.name } });
      },
    };
  },
};
