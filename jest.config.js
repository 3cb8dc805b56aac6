// Jest in ESM mode (NODE_OPTIONS=--experimental-vm-modules): Nest 12 and @kubernetes/client-node are ESM-only.
// Three projects: `unit` (pure code and fakes, parallel), `int` (real Redis / HTTP / sshd, serial),
// `e2e` (the real lab: CRIU, sshd nodes in network namespaces, Redis; serial), `qemu` (VMs with a distro kernel).
const shared = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^@spotlift/(.*)$': '<rootDir>/libs/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.json', diagnostics: false }],
  },
  testEnvironment: 'node',
  rootDir: '.',
};
export default {
  testTimeout: 300_000,
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs,deploy,bench}/**/*.spec.ts'] },
    { ...shared, displayName: 'int', testMatch: ['<rootDir>/{apps,libs,deploy}/**/*.int-spec.ts'] },
    { ...shared, displayName: 'e2e', testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'] },
    // The real-kernel lab: qemu VMs with a Debian cloud kernel (soft-dirty on), for pre-copy.
    { ...shared, displayName: 'qemu', testMatch: ['<rootDir>/test/qemu/**/*.qemu-spec.ts'] },
  ],
};
