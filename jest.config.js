// Jest runs the TypeScript sources directly (native ESM, transformed by SWC: it strips types and
// does not care which TypeScript version is pinned; `tsc --noEmit` does the type checking).
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2023' }, module: { type: 'es6' } },
    ],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 120_000,
  maxWorkers: 2,
  // The engine loads `sluice` (this package) from its sources, as workers and jobs do in tests.
  testEnvironmentOptions: { customExportConditions: ['node', 'sluice-source'] },
};
