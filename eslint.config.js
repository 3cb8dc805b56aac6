import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import noCycle from './eslint-rules/no-cycle.js';
import noNodeRunner from './eslint-rules/no-node-runner.js';

// Layering (README "Architecture"). Flat config does not merge a rule's options across blocks, so every block
// that restricts imports repeats the repository-wide patterns.
const NO_DEEP_IMPORTS = ['@spotlift/*/src/*', '**/libs/*/src/*'];
const IO = [
  'node:fs',
  'node:fs/*',
  'fs',
  'node:child_process',
  'child_process',
  'node:net',
  'net',
  'node:http',
  'node:https',
  'ssh2',
  'ioredis',
  'bullmq',
  '@nestjs/*',
];
// The node-command brand is made only where node commands are written: libs/engine/src/node-ops and
// libs/node-commands (transport's own commands; transport cannot import the engine).
const NODE_COMMAND_MAKER = {
  name: '@spotlift/node-commands',
  importNames: ['nodeCommand'],
  message: 'node commands are written in libs/engine/src/node-ops and libs/node-commands only',
};
const restrict = (patterns, message, paths = [NODE_COMMAND_MAKER]) => [
  'error',
  {
    paths,
    patterns: [
      { group: NO_DEEP_IMPORTS, message: 'import a lib through @spotlift/<lib>' },
      { group: patterns, message },
    ],
  },
];
const ENGINE_RESTRICTED = ['@nestjs/*', '**/apps/**', '@spotlift/testing', 'ioredis', 'bullmq', 'ssh2'];
const ENGINE_WHY = 'libs/engine imports no Nest, no app code, no test helpers and no I/O client (ports only)';
const TESTS = ['**/*.spec.ts', '**/*.int-spec.ts', '**/*.e2e-spec.ts', '**/*.qemu-spec.ts', '**/test/**/*.ts'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '**/*.js', '.lab/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { spotlift: { rules: { 'no-cycle': noCycle, 'no-node-runner': noNodeRunner } } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/unbound-method': 'off',
      'no-restricted-imports': ['error', { paths: [NODE_COMMAND_MAKER], patterns: NO_DEEP_IMPORTS }],
      // Cycles make two modules one that must be read at once (migration-steps <-> recovery was one).
      'spotlift/no-cycle': 'error',
      // NodeOps' runners take any command: outside libs/engine/src/node-ops, callers use its named operations.
      'spotlift/no-node-runner': 'error',
    },
  },
  {
    // Pure libraries: no Nest, no I/O, and no lib that does I/O.
    files: [
      'libs/criu/src/**/*.ts',
      'libs/domain/src/**/*.ts',
      'libs/placement/src/**/*.ts',
      'libs/node-commands/src/**/*.ts',
    ],
    ignores: TESTS,
    rules: {
      'no-restricted-imports': restrict(
        [
          ...IO,
          '@spotlift/*',
          '!@spotlift/domain',
          '!@spotlift/criu',
          '!@spotlift/placement',
          '!@spotlift/node-commands',
        ],
        'pure libs (criu, domain, placement, node-commands) do no I/O and import only pure libs',
      ),
    },
  },
  {
    // The engine talks to ports only: no Nest, no app code, no test helpers in its sources.
    files: ['libs/engine/src/**/*.ts'],
    ignores: TESTS,
    rules: {
      'no-restricted-imports': restrict(ENGINE_RESTRICTED, ENGINE_WHY),
    },
  },
  {
    // Node commands are written in libs/engine/src/node-ops only: nobody else may mark text as a NodeCommand
    // (the apps cannot reach node-command.ts at all: it is not exported and deep imports are refused).
    files: ['libs/engine/src/**/*.ts'],
    ignores: [...TESTS, 'libs/engine/src/node-ops/**'],
    rules: {
      'no-restricted-imports': restrict(
        [...ENGINE_RESTRICTED, '**/node-command.js'],
        `${ENGINE_WHY}; node commands are written in libs/engine/src/node-ops only`,
      ),
    },
  },
  {
    // The node-commands layer itself: the engine's rules (node-ops) or a pure lib's (node-commands), and the brand.
    files: ['libs/engine/src/node-ops/**/*.ts'],
    ignores: TESTS,
    rules: { 'no-restricted-imports': restrict(ENGINE_RESTRICTED, ENGINE_WHY, []) },
  },
  {
    files: ['libs/node-commands/src/**/*.ts'],
    ignores: TESTS,
    rules: {
      'no-restricted-imports': restrict(
        [...IO, '@spotlift/*', '!@spotlift/domain'],
        'pure libs (criu, domain, placement, node-commands) do no I/O and import only pure libs',
        [],
      ),
    },
  },
  {
    // The CLI is a REST client: its HTTP clients (api-client.ts, event-stream-client.ts) and the shared record types, nothing else.
    files: ['apps/cli/src/**/*.ts'],
    ignores: TESTS,
    rules: {
      'no-restricted-imports': restrict(
        [
          'ioredis',
          'bullmq',
          'ssh2',
          '@nestjs/*',
          'node:child_process',
          'node:net',
          '**/orchestrator/**',
          '**/libs/**',
        ],
        'the CLI talks to the REST API only',
      ),
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@spotlift/*'], allowTypeImports: true, message: 'the CLI imports only types from the libs' },
          ],
        },
      ],
    },
  },
  {
    files: ['apps/cli/src/**/*.ts'],
    ignores: [...TESTS, 'apps/cli/src/api-client.ts', 'apps/cli/src/event-stream-client.ts'],
    rules: {
      'no-restricted-imports': restrict(
        [
          'ioredis',
          'bullmq',
          'ssh2',
          '@nestjs/*',
          'node:child_process',
          'node:net',
          'node:http',
          'node:https',
          '**/orchestrator/**',
          '**/libs/**',
        ],
        'the CLI talks to the REST API through api-client.ts and event-stream-client.ts only',
      ),
    },
  },
  {
    files: TESTS.concat('libs/testing/**/*.ts'),
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
