// A local ESLint rule: no import cycles between the repository's TypeScript files.
// eslint-plugin-import is not a dependency here, and a cycle is what makes a layer unreadable (you cannot
// follow one module without the other), so this small rule walks the imports itself. It follows relative
// imports (`./x.js` -> `./x.ts` or `./x/index.ts`) and `@spotlift/<lib>` (-> libs/<lib>/src/index.ts), type-only
// imports included: a type cycle is still two modules that cannot be read apart.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s+['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;

function resolveSpecifier(spec, fromFile, root) {
  let base;
  if (spec.startsWith('.')) base = resolve(dirname(fromFile), spec);
  else {
    const m = /^@spotlift\/([^/]+)$/.exec(spec);
    if (!m) return undefined;
    return join(root, 'libs', m[1], 'src', 'index.ts');
  }
  const stem = base.replace(/\.js$/, '');
  for (const candidate of [`${stem}.ts`, join(stem, 'index.ts')]) if (existsSync(candidate)) return candidate;
  return undefined;
}

/** Imports of a file, resolved; cached per lint run (files do not change during one). */
const cache = new Map();
function importsOf(file, root) {
  if (cache.has(file)) return cache.get(file);
  let text;
  {
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      text = '';
    }
  }
  const out = [];
  for (const m of text.matchAll(IMPORT)) {
    const target = resolveSpecifier(m[1] ?? m[2], file, root);
    if (target) out.push(target);
  }
  cache.set(file, out);
  return out;
}

/** A path of imports from `start` back to `target`, or undefined. */
function pathBack(start, target, root) {
  const seen = new Set();
  const stack = [[start, [start]]];
  while (stack.length) {
    const [file, path] = stack.pop();
    if (file === target) return path;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const next of importsOf(file, root)) if (!seen.has(next)) stack.push([next, [...path, next]]);
  }
  return undefined;
}

export default {
  meta: {
    type: 'problem',
    docs: { description: 'forbid import cycles between the repository files' },
    schema: [],
    messages: { cycle: 'import cycle: {{path}}' },
  },
  create(context) {
    const file = context.filename;
    const root = context.cwd;
    const check = (node) => {
      const spec = node.source?.value;
      if (typeof spec !== 'string') return;
      const target = resolveSpecifier(spec, file, root);
      if (!target) return;
      const back = target === file ? [file] : pathBack(target, file, root);
      if (!back) return;
      const short = (f) => f.slice(root.length + 1);
      context.report({ node, messageId: 'cycle', data: { path: [file, ...back].map(short).join(' -> ') } });
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check };
  },
};
