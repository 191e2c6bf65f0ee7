/**
 * `testJob()`: the entry point of `sluice/testing`. Compiles a job — a definition, or the path of a
 * job module loaded as the workers load it — and builds a {@link JobDriver} for it with the service's
 * defaults where a test gives none.
 */
import { fileURLToPath } from 'node:url';
import { ENV } from '../config/schema.ts';
import { type JobDefinition, type JobSpec } from '../job/define-job.ts';
import { loadJobPlan } from '../job/loader.ts';
import { compileJob, type JobPlan } from '../job/plan.ts';
import { JobDriver } from './job-driver.ts';
import { type TestTableRecord } from './test-tables.ts';
import { type DriverSettings } from './test-topics.ts';

/** Where the driver's clock starts unless a test says otherwise: 2024-01-01T00:00:00Z. */
export const DEFAULT_TEST_START_TIME = Date.UTC(2024, 0, 1);

export interface TestJobOptions {
  /**
   * Partitions of the input topics: one count for every topic, or a count per topic (topics not named
   * have 1). The repartition topic and the output topic get as many as the largest, as in the service.
   * @defaultValue 1
   */
  partitions?: number | Readonly<Record<string, number>>;
  /** Partitions of the output topic. @defaultValue the largest input topic's count */
  outputPartitions?: number;
  /** The most records in one batch, over all partitions (`SLUICE_MAX_BATCH_RECORDS`). @defaultValue the job's */
  maxBatchRecords?: number;
  /** Larger records (key + value) are dead-lettered (`SLUICE_MAX_RECORD_BYTES`). @defaultValue 1 MiB */
  maxRecordBytes?: number;
  /** Where the clock starts, epoch ms or a Date. @defaultValue {@link DEFAULT_TEST_START_TIME} */
  startTime?: number | Date;
  /** The folder a relative job path is resolved against. @defaultValue `process.cwd()` */
  cwd?: string;
  /**
   * Rows of the job's table topics (`table(topic)`, joined with `joinTable`) before the first batch, per
   * topic; later ones with `driver.sendTable()`. @defaultValue none: every lookup finds no row
   */
  tables?: Readonly<Record<string, readonly TestTableRecord[]>>;
}

function positiveInteger(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new RangeError(`${name} must be a positive integer (got ${value})`);
  return value;
}

/** SLUICE_MAX_RECORD_BYTES's default, read from the configuration schema (not from the environment). */
function defaultMaxRecordBytes(): number {
  const spec = ENV.SLUICE_MAX_RECORD_BYTES;
  return spec.schema.parse(spec.default) as number;
}

function partitionsOf(plan: JobPlan, given: TestJobOptions['partitions']): Map<string, number> {
  if (given === undefined || typeof given === 'number') {
    const n = positiveInteger(given, 'partitions', 1);
    return new Map(plan.inputTopics.map((topic) => [topic, n]));
  }
  for (const topic of Object.keys(given)) {
    if (!plan.inputTopics.includes(topic)) {
      throw new RangeError(
        `partitions: ${topic} is not an input topic of ${plan.name} (${plan.inputTopics.join(', ')})`,
      );
    }
  }
  return new Map(plan.inputTopics.map((topic) => [topic, positiveInteger(given[topic], `partitions.${topic}`, 1)]));
}

/** The driver's settings: the options given, else the service's defaults. */
export function driverSettings(plan: JobPlan, options: TestJobOptions): DriverSettings {
  const partitions = partitionsOf(plan, options.partitions);
  const start = options.startTime instanceof Date ? options.startTime.getTime() : options.startTime;
  if (start !== undefined && !Number.isFinite(start)) throw new RangeError(`startTime must be a time (got ${start})`);
  return {
    partitions,
    outputPartitions: positiveInteger(options.outputPartitions, 'outputPartitions', Math.max(...partitions.values())),
    maxBatchRecords: positiveInteger(options.maxBatchRecords, 'maxBatchRecords', plan.maxBatchRecords),
    maxRecordBytes: positiveInteger(options.maxRecordBytes, 'maxRecordBytes', defaultMaxRecordBytes()),
    startTime: start ?? DEFAULT_TEST_START_TIME,
    tables: options.tables ?? {},
  };
}

/**
 * A test driver for a job: the pipeline runs in this process, on the records the test sends, with the
 * tasks, record format, repartition blocks and dead letters of the service's workers, and a clock the
 * test moves (no Kafka, no threads).
 *
 * ```ts
 * import { testJob } from 'sluice/testing';
 * import job from '../jobs/page-views.ts';
 *
 * const driver = await testJob(job, { partitions: 2 });
 * const { outputs, late } = driver.run([{ key: 'u1', value: { page: '/', user: 'u1', ts: 1_000 } }]);
 * ```
 *
 * @param job the job definition (a module's default export), or the path (or `file:` URL) of a job
 * module, loaded and validated as the service loads it.
 * @throws JobValidationError for an invalid job; JobLoadError for a module that cannot be loaded.
 */
export async function testJob<In>(
  job: JobDefinition<In> | JobSpec<In> | string | URL,
  options: TestJobOptions = {},
): Promise<JobDriver> {
  let plan: JobPlan;
  if (typeof job === 'string') plan = await loadJobPlan(job, options.cwd);
  else if (job instanceof URL) plan = await loadJobPlan(fileURLToPath(job), options.cwd);
  else plan = compileJob(job);
  return new JobDriver(plan, driverSettings(plan, options));
}
