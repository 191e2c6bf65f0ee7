/**
 * The field checks of a job definition: each validates one field, pushes an issue naming the field
 * when it is wrong, and returns the value resolved (defaults, durations) when it is right.
 */
import { describeError } from '../errors.ts';
import { isUnitlessNumber, parseDuration } from '../util/duration.ts';
import { encodeAccumulator } from '../wire/changelog.ts';
import { type Aggregator, reducer } from '../windows/aggregators.ts';
import { resolveAssigner, type ResolvedWindowAssigner, type WindowAssigner } from '../windows/assigners.ts';
import { type Format } from './define-job.ts';
import { type OpKind, type Step } from './stream.ts';

export const JOB_FIELDS = [
  'name',
  'input',
  'eventTime',
  'batchInterval',
  'maxBatchRecords',
  'delivery',
  'pipeline',
  'output',
];
export const DELIVERIES = ['exactly-once', 'at-least-once'] as const;
const INPUT_FIELDS = ['topics', 'format'];
const OUTPUT_FIELDS = ['topic'];
export const WINDOW_OPTIONS = ['lateness', 'emit', 'idleTimeout', 'time'];
const FORMATS: readonly Format[] = ['json', 'string', 'bytes'];
export const OP_KINDS: readonly string[] = ['map', 'filter', 'flatMap', 'keyBy'] satisfies OpKind[];

const NAME_PATTERN = /^[a-zA-Z0-9._-]{1,200}$/;
// Kafka's own rule (org.apache.kafka.common.internals.Topic).
const TOPIC_PATTERN = /^[a-zA-Z0-9._-]{1,249}$/;

export const DEFAULT_BATCH_INTERVAL_MS = 1000;
/** The shortest batch interval, for the job's `batchInterval` and its override `SLUICE_BATCH_INTERVAL`. */
export const MIN_BATCH_INTERVAL_MS = 10;
export const DEFAULT_MAX_BATCH_RECORDS = 50_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export type Issues = string[];
export type Fields = Record<string, unknown>;

export function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A short rendering of a user value for messages. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

export function isTopicName(value: unknown): value is string {
  return typeof value === 'string' && TOPIC_PATTERN.test(value) && value !== '.' && value !== '..';
}

export function checkKnown(
  fields: Fields,
  allowed: readonly string[],
  noun: string,
  where: string,
  issues: Issues,
): void {
  for (const key of Object.keys(fields)) {
    if (!allowed.includes(key)) issues.push(`unknown ${noun} "${key}" in ${where} (allowed: ${allowed.join(', ')})`);
  }
}

export function checkName(value: unknown, issues: Issues): string | undefined {
  if (value === undefined) issues.push('name is required');
  else if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    issues.push(`name ${show(value)} is invalid: 1–200 characters from a-z A-Z 0-9 . _ -`);
  } else return value;
  return undefined;
}

export function checkInput(input: unknown, issues: Issues): { topics: string[]; format: Format } {
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

export function checkOutput(output: unknown, inputTopics: readonly string[], issues: Issues): string | undefined {
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
export function checkInternalTopics(
  name: string,
  inputTopics: readonly string[],
  output: string,
  issues: Issues,
): void {
  const internal = new Map([
    [`${name}-dlq`, 'dead-letter'],
    [`${name}-repartition`, 'repartition'],
    [`${name}-changelog`, 'changelog'],
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

export function checkDuration(
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

export function checkAssigner(assigner: unknown, issues: Issues): ResolvedWindowAssigner | undefined {
  const kind = isRecord(assigner) ? assigner['kind'] : undefined;
  if (!isRecord(assigner) || (kind !== 'tumbling' && kind !== 'sliding' && kind !== 'session')) {
    issues.push(
      `window: the assigner must be tumbling(size), sliding(size, slide) or session(gap) (got ${show(assigner)})`,
    );
    return undefined;
  }
  const positive = (field: 'size' | 'slide' | 'gap'): number | undefined => {
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
  if (kind === 'session')
    return positive('gap') === undefined ? undefined : resolveAssigner(assigner as unknown as WindowAssigner);
  const sizeMs = positive('size');
  if (kind === 'tumbling')
    return sizeMs === undefined ? undefined : resolveAssigner(assigner as unknown as WindowAssigner);
  const slideMs = positive('slide');
  if (sizeMs === undefined || slideMs === undefined) return undefined;
  if (slideMs > sizeMs) {
    issues.push(`window: slide (${slideMs} ms) is larger than size (${sizeMs} ms)`);
    return undefined;
  }
  return resolveAssigner(assigner as unknown as WindowAssigner);
}

export function checkChoice<C extends string>(
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

const SESSION_MERGE =
  '; session windows need merge(a, b): a record that bridges two sessions merges their accumulators, earlier first';

/** `sessions`: the window is `session(gap)`, whose sessions merge with the aggregator's `merge`. */
export function checkAggregator(
  step: Step & { kind: 'aggregate' | 'reduce' },
  label: string,
  issues: Issues,
  sessions = false,
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
    const why = sessions && missing.includes('merge') ? SESSION_MERGE : '';
    issues.push(
      `pipeline: ${label} expects an aggregator with init, add, merge and result functions (missing: ${missing.join(', ')})${why}`,
    );
    return undefined;
  }
  // The state is kept in the changelog: an accumulator that would not come back the same is refused
  // now, with the job, rather than window by window once records flow.
  try {
    encodeAccumulator((agg['init'] as () => unknown)());
  } catch (error) {
    issues.push(`pipeline: ${label} init() returns an accumulator the changelog cannot store: ${describeError(error)}`);
  }
  return agg as unknown as Aggregator<unknown, unknown, unknown>;
}
