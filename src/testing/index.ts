/**
 * `sluice/testing`: unit tests for job modules. `testJob()` runs a job's pipeline in the test's own
 * process on records the test sends, with a clock the test moves, through the tasks the service's
 * workers run (same record format, same repartition blocks between the stages of a re-keyed job, same
 * dead letters), and returns its outputs, dead letters and late records. No Kafka, no threads.
 */
export { DEFAULT_TEST_START_TIME, testJob } from './test-job.ts';
export type { TestJobOptions } from './test-job.ts';
export type { BatchResult, JobDriver, RunOptions, RunResult } from './job-driver.ts';
export type { SentRecord, TestDeadLetter, TestOutput, TestRecord } from './test-records.ts';
export type { TestTableRecord } from './test-tables.ts';
