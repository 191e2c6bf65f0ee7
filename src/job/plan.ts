/**
 * Compiles a job definition into the plan the engine runs: validates every field (collecting all
 * issues into one `JobValidationError`), resolves defaults and durations, runs the user's `pipeline`
 * once against a fresh root stream, and splits its operators into the stages around the repartition
 * topic.
 */
import { describeError, JobValidationError } from '../errors.ts';
import { isUnitlessNumber, parseDuration } from '../util/duration.ts';
import { type Aggregator, reducer } from '../windows/aggregators.ts';
import { type ResolvedAssigner, resolveAssigner, type WindowAssigner } from '../windows/assigners.ts';
import { type Format, type RecordMeta } from './define-job.ts';
import { createRootStream, type OpKind, type Step, streamInternals } from './stream.ts';

export type { OpKind } from './stream.ts';
export type { Format, RecordMeta } from './define-job.ts';

/** A record-at-a-time operator of the plan. */
export interface Op {
  kind: OpKind;
  fn: (value: unknown) => unknown;
  /** Kind and 1-based position in the pipeline, e.g. `map#2`, for error messages. */
  label: string;
}

/** The window and aggregation of an aggregating job, with defaults resolved. */
export interface WindowPlan {
  assigner: ResolvedAssigner;
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
  /**
   * Operators run on input records: all of them when not repartitioned; up to and including the
   * `keyBy` when repartitioned.
   */
  stage1: Op[];
  /** Operators run on repartitioned records, after the `keyBy` and before the window (else empty). */
  stage2: Op[];
  window: WindowPlan | undefined;
}

const JOB_FIELDS = ['name', 'input', 'eventTime', 'batchInterval', 'maxBatchRecords', 'pipeline', 'output'];
const INPUT_FIELDS = ['topics', 'format'];
const OUTPUT_FIELDS = ['topic'];
const WINDOW_OPTIONS = ['lateness', 'emit', 'idleTimeout', 'time'];
const FORMATS: readonly Format[] = ['json', 'string', 'bytes'];
const OP_KINDS: readonly string[] = ['map', 'filter', 'flatMap', 'keyBy'] satisfies OpKind[];

const NAME_PATTERN = /^[a-zA-Z0-9._-]{1,200}$/;
// Kafka's own rule (org.apache.kafka.common.internals.Topic).
const TOPIC_PATTERN = /^[a-zA-Z0-9._-]{1,249}$/;

const DEFAULT_BATCH_INTERVAL_MS = 1000;
/** The shortest batch interval, for the job's `batchInterval` and its override `SLUICE_BATCH_INTERVAL`. */
export const MIN_BATCH_INTERVAL_MS = 10;
const DEFAULT_MAX_BATCH_RECORDS = 50_000;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

type Issues = string[];
type Fields = Record<string, unknown>;

function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A short rendering of a user value for messages. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

function isTopicName(value: unknown): value is string {
  return typeof value === 'string' && TOPIC_PATTERN.test(value) && value !== '.' && value !== '..';
}

function checkKnown(fields: Fields, allowed: readonly string[], noun: string, where: string, issues: Issues): void {
  for (const key of Object.keys(fields)) {
    if (!allowed.includes(key)) issues.push(`unknown ${noun} "${key}" in ${where} (allowed: ${allowed.join(', ')})`);
  }
}

function checkName(value: unknown, issues: Issues): string | undefined {
  if (value === undefined) issues.push('name is required');
  else if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    issues.push(`name ${show(value)} is invalid: 1–200 characters from a-z A-Z 0-9 . _ -`);
  } else return value;
  return undefined;
}

function checkInput(input: unknown, issues: Issues): { topics: string[]; format: Format } {
  const topics: string[] = [];
  let format: Format = 'json';
  if (input === undefined) issues.push('input is required');
  else if (!isRecord(input)) issues.push(`input must be an object (got ${show(input)})`);
  else {
    checkKnown(input, INPUT_FIELDS, 'field', 'input', issues);
    const list = input['topics'];
    if (list === undefined) issues.push('input.topics is required');
    else if (!Array.isArray(list)) issues.push(`input.topics must be an array of topic names (got ${show(list)})`);
    else if (list.length === 0) issues.push('input.topics must list at least one topic');
    else {
      (list as unknown[]).forEach((topic, i) => {
        if (!isTopicName(topic)) issues.push(`input.topics[${i}] ${show(topic)} is not a valid topic name`);
        else if (topics.includes(topic)) issues.push(`input.topics[${i}] "${topic}" is listed more than once`);
        else topics.push(topic);
      });
    }
    const fmt = input['format'];
    if (fmt !== undefined) {
      if ((FORMATS as readonly unknown[]).includes(fmt)) format = fmt as Format;
      else issues.push(`input.format ${show(fmt)} is not supported (allowed: ${FORMATS.join(', ')})`);
    }
  }
  return { topics, format };
}

function checkOutput(output: unknown, inputTopics: readonly string[], issues: Issues): string | undefined {
  if (output === undefined) issues.push('output is required');
  else if (!isRecord(output)) issues.push(`output must be an object (got ${show(output)})`);
  else {
    checkKnown(output, OUTPUT_FIELDS, 'field', 'output', issues);
    const topic = output['topic'];
    if (topic === undefined) issues.push('output.topic is required');
    else if (!isTopicName(topic)) issues.push(`output.topic ${show(topic)} is not a valid topic name`);
    else if (inputTopics.includes(topic)) issues.push(`output.topic "${topic}" is also an input topic`);
    else return topic;
  }
  return undefined;
}

/** A job reading or writing its own internal topics would feed on itself. */
function checkInternalTopics(name: string, inputTopics: readonly string[], output: string, issues: Issues): void {
  const internal = new Map([
    [`${name}-dlq`, 'dead-letter'],
    [`${name}-repartition`, 'repartition'],
  ]);
  inputTopics.forEach((topic, i) => {
    const role = internal.get(topic);
    if (role) issues.push(`input.topics[${i}] "${topic}" is the job's own ${role} topic`);
  });
  const role = internal.get(output);
  if (role) issues.push(`output.topic "${output}" is the job's own ${role} topic`);
}

/** A string like '5' could mean milliseconds or seconds: show both spellings that say which. */
function unitlessHint(value: string): string {
  const n = value.trim();
  return `write ${n} (a number of milliseconds), "${n}ms" or "${n}s" (only "0" may omit its unit)`;
}

function checkDuration(
  value: unknown,
  field: string,
  defaultMs: number,
  minMs: number,
  issues: Issues,
): number | undefined {
  if (value === undefined) return defaultMs;
  const ms = parseDuration(value);
  if (ms === undefined) {
    issues.push(
      isUnitlessNumber(value)
        ? `${field} ${show(value)} has no unit: ${unitlessHint(value)}`
        : `${field} ${show(value)} is not a valid duration (a number of ms ≥ 0, or e.g. "500ms", "10s", "5m")`,
    );
    return undefined;
  }
  if (ms < minMs) {
    issues.push(`${field} must be at least ${minMs}ms (got ${ms} ms)`);
    return undefined;
  }
  return ms;
}

function checkAssigner(assigner: unknown, issues: Issues): ResolvedAssigner | undefined {
  if (!isRecord(assigner) || (assigner['kind'] !== 'tumbling' && assigner['kind'] !== 'sliding')) {
    issues.push(`window: the assigner must be tumbling(size) or sliding(size, slide) (got ${show(assigner)})`);
    return undefined;
  }
  const positive = (field: 'size' | 'slide'): number | undefined => {
    const value = assigner[field];
    const ms = parseDuration(value);
    if (ms !== undefined && ms > 0) return ms;
    issues.push(
      isUnitlessNumber(value)
        ? `window: ${field} ${show(value)} has no unit: ${unitlessHint(value)}`
        : `window: ${field} ${show(value)} is not a positive duration`,
    );
    return undefined;
  };
  const sizeMs = positive('size');
  if (assigner['kind'] === 'tumbling')
    return sizeMs === undefined ? undefined : resolveAssigner(assigner as unknown as WindowAssigner);
  const slideMs = positive('slide');
  if (sizeMs === undefined || slideMs === undefined) return undefined;
  if (slideMs > sizeMs) {
    issues.push(`window: slide (${slideMs} ms) is larger than size (${sizeMs} ms)`);
    return undefined;
  }
  return resolveAssigner(assigner as unknown as WindowAssigner);
}

function checkChoice<C extends string>(
  value: unknown,
  field: string,
  choices: readonly [C, ...C[]],
  issues: Issues,
): C | undefined {
  if (value === undefined) return choices[0];
  if ((choices as readonly unknown[]).includes(value)) return value as C;
  issues.push(`${field} must be ${choices.map((c) => `"${c}"`).join(' or ')} (got ${show(value)})`);
  return undefined;
}

function checkAggregator(
  step: Step & { kind: 'aggregate' | 'reduce' },
  label: string,
  issues: Issues,
): Aggregator<unknown, unknown, unknown> | undefined {
  if (step.kind === 'reduce') {
    if (typeof step.fn === 'function') return reducer(step.fn as (a: unknown, b: unknown) => unknown);
    issues.push(`pipeline: ${label} expects a function (got ${show(step.fn)})`);
    return undefined;
  }
  const agg = step.aggregator;
  if (!isRecord(agg)) {
    issues.push(`pipeline: ${label} expects an aggregator (got ${show(agg)})`);
    return undefined;
  }
  const missing = ['init', 'add', 'merge', 'result'].filter((m) => typeof agg[m] !== 'function');
  if (missing.length > 0) {
    issues.push(
      `pipeline: ${label} expects an aggregator with init, add, merge and result functions (missing: ${missing.join(', ')})`,
    );
    return undefined;
  }
  return agg as unknown as Aggregator<unknown, unknown, unknown>;
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
      ? checkAggregator(aggStep, aggLabel, issues)
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
  const pipeline = checkPipeline(definition['pipeline'], issues);

  // Without issues every value is defined; the second half only informs the compiler.
  if (
    issues.length > 0 ||
    name === undefined ||
    outputTopic === undefined ||
    batchIntervalMs === undefined ||
    typeof maxBatchRecords !== 'number' ||
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
    stage1: freezeOps(repartitioned ? ops.slice(0, keyByAt + 1) : ops),
    stage2: freezeOps(repartitioned ? ops.slice(keyByAt + 1) : []),
    window: window && Object.freeze({ ...window, assigner: Object.freeze(window.assigner) }),
  };
  return Object.freeze(plan);
}

function freezeOps(ops: Op[]): Op[] {
  return Object.freeze(ops.map((op) => Object.freeze(op))) as Op[];
}
