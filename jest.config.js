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
  // The tests' own kafkajs consumers read transactional topics with kafkajs's aborted-record filter
  // corrected, as the service does (src/kafka/filter-aborted-messages.cjs).
  moduleNameMapper: { '^\\./filterAbortedMessages$': '<rootDir>/src/kafka/filter-aborted-messages.cjs' },
  // `.mts`, so that Jest imports them (Node strips their types) instead of first trying `require()`
  // through its transform, which compiles them to CommonJS and leaves the graph half-loaded when it
  // meets a top-level await (scripts/kafka/local-broker.ts has one).
  globalSetup: '<rootDir>/test/global-setup.mts',
  globalTeardown: '<rootDir>/test/global-teardown.mts',
  testTimeout: 120_000,
  maxWorkers: 2,
  // The engine loads `sluice` (this package) from its sources, as workers and jobs do in tests.
  testEnvironmentOptions: { customExportConditions: ['node', 'sluice-source'] },
};
