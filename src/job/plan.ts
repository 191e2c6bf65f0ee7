/**
 * Compiles a job definition into the plan the engine runs: validates every field (collecting all
 * issues into one `JobValidationError`), resolves defaults and durations, runs the user's `pipeline`
 * once against a fresh root stream, and splits its operators into the stages around the repartition
 * topic.
 */
import { describeError, JobValidationError } from '../errors.ts';
import { type Aggregator } from '../windows/aggregators.ts';
import { type ResolvedWindowAssigner } from '../windows/assigners.ts';
import { type Format, type RecordMeta } from './define-job.ts';
import {
  checkAggregator,
  checkAssigner,
  checkChoice,
  checkDuration,
  checkInput,
  checkInternalTopics,
  checkKnown,
  checkName,
  checkOutput,
  DEFAULT_BATCH_INTERVAL_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_BATCH_RECORDS,
  DELIVERIES,
  isRecord,
  JOB_FIELDS,
  MIN_BATCH_INTERVAL_MS,
  OP_KINDS,
  show,
  WINDOW_OPTIONS,
  type Issues,
} from './field-checks.ts';
import { createRootStream, type OpKind, type Step, streamInternals } from './stream.ts';
import { checkJoin, checkTables } from './join-checks.ts';
import { type JoinPlan, type TablePlan } from './table.ts';

export { MIN_BATCH_INTERVAL_MS } from './field-checks.ts';

export type { OpKind } from './stream.ts';
export type { JoinPlan, TablePlan } from './table.ts';

/** `exactly-once`: one Kafka transaction per task and batch; `at-least-once`: results may repeat. */
export type Delivery = (typeof DELIVERIES)[number];
export type { Format, RecordMeta } from './define-job.ts';

/** A record-at-a-time operator of the plan. */
export interface Op {
  kind: OpKind;
  /** `joinTable`: called with the row too. */
  fn: (value: unknown, row?: unknown) => unknown;
  /** Kind and 1-based position in the pipeline, e.g. `map#2`, for error messages. */
  label: string;
  /** `joinTable`: the table, inner or left, and the lookup key. */
  join?: JoinPlan;
}

/** The window and aggregation of an aggregating job, with defaults resolved. */
export interface WindowPlan {
  assigner: ResolvedWindowAssigner;
  latenessMs: number;
  emit: 'final' | 'update';
  /** `0`: idle partitions never advance their stream time. */
  idleTimeoutMs: number;
  time: 'event' | 'processing';
  aggregator: Aggregator<unknown, unknown, unknown>;
}

/** A validated job with every default resolved: what the engine runs. */
export interface JobPlan {
  name: string;
  inputTopics: string[];
  format: Format;
  eventTime: ((value: unknown, meta: RecordMeta) => number | Date) | undefined;
  batchIntervalMs: number;
  maxBatchRecords: number;
  outputTopic: string;
  /** `<name>-dlq`. */
  dlqTopic: string;
  /** `<name>-repartition` when a `keyBy` comes before the window, else `undefined`. */
  repartitionTopic: string | undefined;
  /** `<name>-changelog` when the job has a window (its state), else `undefined`. */
  changelogTopic: string | undefined;
  /** How results and state reach Kafka (`SLUICE_DELIVERY` overrides it). */
  delivery: Delivery;
  /**
   * Operators run on input records: all of them when not repartitioned; up to and including the
   * `keyBy` when repartitioned.
   */
  stage1: Op[];
  /** Operators run on repartitioned records, after the `keyBy` and before the window (else empty). */
  stage2: Op[];
  window: WindowPlan | undefined;
  /** The tables the operators join, one per topic (empty without `joinTable`). */
  tables: TablePlan[];
}

interface CompiledPipeline {
  ops: Op[];
  window: WindowPlan | undefined;
}

function checkWindow(
  step: Step & { kind: 'window' },
  aggStep: Step | undefined,
  aggLabel: string,
  issues: Issues,
): WindowPlan | undefined {
  const assigner = checkAssigner(step.assigner, issues);
  const given = step.options ?? {};
  if (!isRecord(given)) issues.push(`window options must be an object (got ${show(given)})`);
  const options = isRecord(given) ? given : {};
  checkKnown(options, WINDOW_OPTIONS, 'option', 'window options', issues);
  const latenessMs = checkDuration(options['lateness'], 'window.lateness', 0, 0, issues);
  const idleTimeoutMs = checkDuration(options['idleTimeout'], 'window.idleTimeout', DEFAULT_IDLE_TIMEOUT_MS, 0, issues);
  const emit = checkChoice(options['emit'], 'window.emit', ['final', 'update'], issues);
  const time = checkChoice(options['time'], 'window.time', ['event', 'processing'], issues);
  const aggregator =
    aggStep?.kind === 'aggregate' || aggStep?.kind === 'reduce'
      ? checkAggregator(aggStep, aggLabel, issues, isRecord(step.assigner) && step.assigner['kind'] === 'session')
      : undefined;
  if (!assigner || latenessMs === undefined || idleTimeoutMs === undefined || !emit || !time || !aggregator) {
    return undefined;
  }
  return { assigner, latenessMs, emit, idleTimeoutMs, time, aggregator };
}

function compileSteps(steps: readonly Step[], issues: Issues): CompiledPipeline {
  const ops: Op[] = [];
  let window: WindowPlan | undefined;
  steps.forEach((step, i) => {
    const label = `${step.kind}#${i + 1}`;
    if (step.kind === 'window') {
      window = checkWindow(step, steps[i + 1], `${steps[i + 1]?.kind ?? 'aggregate'}#${i + 2}`, issues);
    } else if (step.kind === 'joinTable') {
      const join = checkJoin(step, label, issues);
      if (join) ops.push({ kind: 'joinTable', fn: step.fn as Op['fn'], label, join });
    } else if (OP_KINDS.includes(step.kind)) {
      const { fn } = step as { fn: unknown };
      if (typeof fn === 'function') ops.push({ kind: step.kind as OpKind, fn: fn as Op['fn'], label });
      else issues.push(`pipeline: ${label} expects a function (got ${show(fn)})`);
    }
  });
  const windowAt = steps.findIndex((s) => s.kind === 'window');
  if (windowAt >= 0) {
    const keyBys = steps.flatMap((s, i) => (s.kind === 'keyBy' && i < windowAt ? [`keyBy#${i + 1}`] : []));
    if (keyBys.length > 1) {
      issues.push(`pipeline: only one keyBy is allowed before window (found ${keyBys.join(', ')})`);
    }
  }
  return { ops, window };
}

function checkPipeline(pipeline: unknown, issues: Issues): CompiledPipeline | undefined {
  if (pipeline === undefined) {
    issues.push('pipeline is required');
    return undefined;
  }
  if (typeof pipeline !== 'function') {
    issues.push(`pipeline must be a function (got ${show(pipeline)})`);
    return undefined;
  }
  const { stream, root } = createRootStream();
  let result: unknown;
  try {
    result = (pipeline as (s: unknown) => unknown)(stream);
  } catch (error) {
    issues.push(`pipeline threw while building the stream: ${describeError(error)}`);
    return undefined;
  }
  const internals = streamInternals(result);
  if (!internals) {
    const isPromise = typeof (result as { then?: unknown } | null)?.then === 'function';
    issues.push(
      isPromise
        ? 'pipeline must return a stream synchronously (got a Promise)'
        : `pipeline must return the stream it was given or one derived from it (got ${show(result)})`,
    );
    return undefined;
  }
  if (internals.root !== root) {
    issues.push(
      'pipeline must return a stream derived from the stream it was given (got a stream of another pipeline)',
    );
    return undefined;
  }
  if (internals.shape === 'windowed') {
    const at = internals.steps.length;
    issues.push(`pipeline: window#${at} must be followed by aggregate() or reduce()`);
  }
  return compileSteps(internals.steps, issues);
}

/**
 * Validates a job definition (from `defineJob` or a plain object of the same shape) and compiles it
 * into a frozen {@link JobPlan}. Throws one `JobValidationError` listing every issue found, each
 * naming its field.
 */
export function compileJob(definition: unknown): JobPlan {
  if (!isRecord(definition)) {
    throw new JobValidationError([`job must be an object created by defineJob() (got ${show(definition)})`]);
  }
  const issues: Issues = [];
  checkKnown(definition, JOB_FIELDS, 'field', 'job', issues);
  const name = checkName(definition['name'], issues);
  const input = checkInput(definition['input'], issues);
  const outputTopic = checkOutput(definition['output'], input.topics, issues);
  if (name !== undefined && outputTopic !== undefined) checkInternalTopics(name, input.topics, outputTopic, issues);

  const eventTime = definition['eventTime'];
  if (eventTime !== undefined && typeof eventTime !== 'function') {
    issues.push(`eventTime must be a function (got ${show(eventTime)})`);
  }
  const batchIntervalMs = checkDuration(
    definition['batchInterval'],
    'batchInterval',
    DEFAULT_BATCH_INTERVAL_MS,
    MIN_BATCH_INTERVAL_MS,
    issues,
  );
  const maxBatchRecords = definition['maxBatchRecords'] ?? DEFAULT_MAX_BATCH_RECORDS;
  if (typeof maxBatchRecords !== 'number' || !Number.isSafeInteger(maxBatchRecords) || maxBatchRecords <= 0) {
    issues.push(`maxBatchRecords must be a positive integer (got ${show(maxBatchRecords)})`);
  }
  const delivery = checkChoice(definition['delivery'], 'delivery', DELIVERIES, issues);
  const pipeline = checkPipeline(definition['pipeline'], issues);
  const job = { name, inputTopics: input.topics, outputTopic };
  const tables = pipeline ? checkTables(pipeline.ops, job, pipeline.window !== undefined, issues) : [];

  // Without issues every value is defined; the second half only informs the compiler.
  if (
    issues.length > 0 ||
    name === undefined ||
    outputTopic === undefined ||
    batchIntervalMs === undefined ||
    typeof maxBatchRecords !== 'number' ||
    delivery === undefined ||
    pipeline === undefined
  ) {
    throw new JobValidationError(issues);
  }
  const { ops, window } = pipeline;
  const keyByAt = window ? ops.findIndex((op) => op.kind === 'keyBy') : -1;
  const repartitioned = keyByAt >= 0;
  const plan: JobPlan = {
    name,
    inputTopics: Object.freeze(input.topics) as string[],
    format: input.format,
    eventTime: eventTime as JobPlan['eventTime'],
    batchIntervalMs,
    maxBatchRecords,
    outputTopic,
    dlqTopic: `${name}-dlq`,
    repartitionTopic: repartitioned ? `${name}-repartition` : undefined,
    changelogTopic: window ? `${name}-changelog` : undefined,
    delivery,
    stage1: freezeOps(repartitioned ? ops.slice(0, keyByAt + 1) : ops),
    stage2: freezeOps(repartitioned ? ops.slice(keyByAt + 1) : []),
    window: window && Object.freeze({ ...window, assigner: Object.freeze(window.assigner) }),
    tables: Object.freeze(tables.map((t) => Object.freeze(t))) as TablePlan[],
  };
  return Object.freeze(plan);
}

function freezeOps(ops: Op[]): Op[] {
  return Object.freeze(ops.map((op) => Object.freeze(op))) as Op[];
}
