/**
 * The direction of imports in src/, checked by `npm run lint` (dependency-cruiser). Type-only imports
 * count: a cycle of types is still a knot in the design.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'Imports point one way.', from: {}, to: { circular: true } },
    {
      name: 'wire-is-formats-only',
      severity: 'error',
      comment: 'Byte formats and header names are a contract with topics; they depend on nothing but errors.',
      from: { path: '^src/wire/' },
      to: { path: '^src/', pathNot: '^src/(wire/|errors\\.ts$)' },
    },
    {
      name: 'worker-side-knows-no-main-side',
      severity: 'error',
      comment: 'Worker threads run tasks; the scheduler, receiver, queue, HTTP and app live in the main thread.',
      from: { path: '^src/(worker|windows|job)/' },
      to: { path: '^src/(scheduler|receiver|queue|http|metrics)/|^src/(app|main)\\.ts$' },
    },
    {
      name: 'pool-does-not-import-tasks',
      severity: 'error',
      comment: 'The pool starts worker threads by file, and shares only its protocol with them.',
      from: { path: '^src/pool/' },
      to: { path: '^src/(worker|scheduler|receiver|http|app)' },
    },
    {
      name: 'components-do-not-import-the-composition-root',
      severity: 'error',
      comment: 'app.ts builds the components; main.ts owns the process.',
      from: { pathNot: '^src/main\\.ts$' },
      to: { path: '^src/(app|main)\\.ts$' },
    },
    {
      name: 'testing-runs-tasks-in-process',
      severity: 'error',
      comment:
        "sluice/testing runs the workers' tasks in the test's own thread: nothing it reaches may open a Kafka client, a thread, the sink or the receiver.",
      from: { path: '^src/testing/' },
      to: {
        path: '^src/(sink|receiver)/|^src/pool/worker-|(^|/)node_modules/kafkajs/|^(node:)?worker_threads$',
        reachable: true,
      },
    },
    {
      name: 'no-test-code-in-src',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts|examples)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    combinedDependencies: false,
  },
};
