/**
 * Every error Sluice raises has a stable `code` from one closed list. Errors cross the worker-thread
 * boundary as plain objects ({@link serializeError}) and are rebuilt on the other side.
 */

export const ErrorCodes = [
  'SLUICE_CONFIG_INVALID',
  'SLUICE_JOB_INVALID',
  'SLUICE_JOB_LOAD_FAILED',
  'SLUICE_USER_CODE_FAILED',
  'SLUICE_DESERIALIZE_FAILED',
  'SLUICE_RECORD_TOO_LARGE',
  'SLUICE_LATE_RECORD',
  'SLUICE_WORKER_CRASHED',
  'SLUICE_KAFKA_FAILED',
  'SLUICE_KAFKA_AUTH_FAILED',
  'SLUICE_KAFKA_TLS_FAILED',
  'SLUICE_ILLEGAL_STATE',
  'SLUICE_SHUTDOWN_TIMEOUT',
  'SLUICE_USER_CODE_TIMEOUT',
  'SLUICE_BATCH_FAILED',
  'SLUICE_RESTORE_FAILED',
  'SLUICE_FATAL',
  'SLUICE_STATE_FAILED',
  'SLUICE_PRODUCER_FENCED',
  'SLUICE_TABLE_NOT_COPARTITIONED',
] as const;
export type ErrorCode = (typeof ErrorCodes)[number];

const brand = Symbol.for('sluice.error');

export interface SluiceErrorOptions {
  cause?: unknown;
  retryable?: boolean;
}

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    Object.defineProperty(this, brand, { value: true });
  }
}

/** Bad service configuration: lists every violation, each naming its variable. */
export class ConfigError extends SluiceError {
  static readonly code = 'SLUICE_CONFIG_INVALID';
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(ConfigError.code, `invalid configuration: ${issues.join('; ')}`);
    this.issues = issues;
  }
}

/** A job module that does not describe a valid job. */
export class JobValidationError extends SluiceError {
  static readonly code = 'SLUICE_JOB_INVALID';
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(JobValidationError.code, `invalid job: ${issues.join('; ')}`);
    this.issues = issues;
  }
}

export class JobLoadError extends SluiceError {
  static readonly code = 'SLUICE_JOB_LOAD_FAILED';
  constructor(message: string, cause?: unknown) {
    super(JobLoadError.code, message, { cause });
  }
}

/** Anything thrown by user pipeline code, wrapped with the operator that threw. */
export class UserCodeError extends SluiceError {
  static readonly code = 'SLUICE_USER_CODE_FAILED';
  constructor(message: string, cause?: unknown) {
    super(UserCodeError.code, message, { cause });
  }
}

export class DeserializeError extends SluiceError {
  static readonly code = 'SLUICE_DESERIALIZE_FAILED';
  constructor(message: string, cause?: unknown) {
    super(DeserializeError.code, message, { cause });
  }
}

export class WorkerCrashedError extends SluiceError {
  static readonly code = 'SLUICE_WORKER_CRASHED';
  constructor(message: string, cause?: unknown) {
    super(WorkerCrashedError.code, message, { cause, retryable: true });
  }
}

export class KafkaError extends SluiceError {
  static readonly code = 'SLUICE_KAFKA_FAILED';
  constructor(message: string, cause?: unknown, retryable = true) {
    super(KafkaError.code, message, { cause, retryable });
  }
}

export class KafkaAuthError extends SluiceError {
  static readonly code = 'SLUICE_KAFKA_AUTH_FAILED';
  constructor(message: string, cause?: unknown) {
    super(KafkaAuthError.code, message, { cause });
  }
}

/** A TLS handshake with the brokers failed for a reason of configuration; names the KAFKA_SSL_* variable. */
export class KafkaTlsError extends SluiceError {
  static readonly code = 'SLUICE_KAFKA_TLS_FAILED';
  constructor(message: string, cause?: unknown) {
    super(KafkaTlsError.code, message, { cause });
  }
}

export class IllegalStateError extends SluiceError {
  static readonly code = 'SLUICE_ILLEGAL_STATE';
  constructor(message: string) {
    super(IllegalStateError.code, message);
  }
}

/**
 * User code did not finish a batch within the worker's deadline. Not retryable: the record that hangs
 * would hang again, so it is dead-lettered with this code (a poison pill).
 */
export class UserCodeTimeoutError extends SluiceError {
  static readonly code = 'SLUICE_USER_CODE_TIMEOUT';
  constructor(message: string, cause?: unknown) {
    super(UserCodeTimeoutError.code, message, { cause });
  }
}

/**
 * A changelog partition could not be read to its end (state restore): a non-retriable Kafka error, or
 * retriable ones that outlasted the restore's retry deadline (then `retryable`: a later restore may pass).
 */
export class RestoreError extends SluiceError {
  static readonly code = 'SLUICE_RESTORE_FAILED';
  constructor(message: string, cause?: unknown, retryable = false) {
    super(RestoreError.code, message, { cause, retryable });
  }
}

/** Summaries of a fan-out failure name at most this many of its errors (all are kept in `errors`). */
const SUMMARISED_ERRORS = 5;

/**
 * A fan-out (one batch over several workers) in which one or more parts failed. Like Node's
 * `AggregateError` it keeps every failure in `errors`, not just the first, and its message
 * summarises them with their codes. Retryable only when every failure is: retrying the batch
 * cannot help if one part fails for good.
 */
export class BatchFailedError extends SluiceError {
  static readonly code = 'SLUICE_BATCH_FAILED';
  readonly errors: Error[];

  /** @param summary what failed, e.g. `batch 12`; the message continues with the failures. */
  constructor(errors: Iterable<unknown>, summary = 'batch failed', options: { cause?: unknown } = {}) {
    const list = Array.from(errors, (e) => (e instanceof Error ? e : new Error(describeError(e), { cause: e })));
    const shown = list.slice(0, SUMMARISED_ERRORS).map(describeWithCode);
    if (list.length > shown.length) shown.push(`and ${list.length - shown.length} more`);
    const count = `${list.length} ${list.length === 1 ? 'failure' : 'failures'}`;
    const message = shown.length > 0 ? `${summary}: ${count}: ${shown.join('; ')}` : `${summary}: ${count}`;
    super(BatchFailedError.code, message, {
      cause: options.cause,
      retryable: list.length > 0 && list.every((e) => isRetryable(e)),
    });
    this.errors = list;
  }
}

/**
 * An unexpected failure of the batch loop or the consumer, after which the process cannot go on:
 * it exits and the orchestrator restarts it (the committed offsets say where to resume).
 */
/**
 * A task's state cannot be kept or restored: a changelog partition that holds another task's state,
 * or an accumulator the changelog cannot store.
 */
export class StateError extends SluiceError {
  static readonly code = 'SLUICE_STATE_FAILED';
  constructor(message: string, cause?: unknown) {
    super(StateError.code, message, { cause });
  }
}

/**
 * Another replica took over a partition (its transactional producer has a newer epoch): this one must
 * make no write for it and rebuild it from what was committed, if it still owns it.
 */
export class ProducerFencedError extends SluiceError {
  static readonly code = 'SLUICE_PRODUCER_FENCED';
  constructor(message: string, cause?: unknown) {
    super(ProducerFencedError.code, message, { cause, retryable: true });
  }
}

/**
 * A partitioned table whose topic has another partition count than the stream it is joined against:
 * task p would hold table partition p, which does not hold the keys of stream partition p. Start-up stops.
 */
export class TableNotCopartitionedError extends SluiceError {
  static readonly code = 'SLUICE_TABLE_NOT_COPARTITIONED';
  readonly table: string;
  constructor(table: string, message: string) {
    super(TableNotCopartitionedError.code, message);
    this.table = table;
  }
}

export class FatalError extends SluiceError {
  static readonly code = 'SLUICE_FATAL';
  constructor(message: string, cause?: unknown) {
    super(FatalError.code, message, { cause });
  }
}

/** True for errors made by Sluice, even when created in another thread's copy of this module. */
export function isSluiceError(error: unknown): error is SluiceError {
  if (typeof error !== 'object' || error === null) return false;
  try {
    return (error as Record<symbol, unknown>)[brand] === true;
  } catch {
    return false; // a revoked proxy or a throwing trap
  }
}

/** How deep {@link findErrorBy} follows `cause` and `errors`, and how many values it looks at in all. */
const MAX_SEARCH_DEPTH = 16;
const MAX_SEARCH_VISITS = 1000;

/** Reads a property of any value without letting a throwing getter or proxy trap escape. */
function read(value: object, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

/** What an error wraps: its `cause`, then the `errors` of an aggregate; empty for anything unreadable. */
function nested(value: object): unknown[] {
  const inner: unknown[] = [];
  const cause = read(value, 'cause');
  if (cause !== undefined) inner.push(cause);
  const errors = read(value, 'errors');
  try {
    if (Array.isArray(errors)) inner.push(...errors.slice(0, MAX_SEARCH_VISITS));
  } catch {
    // A revoked proxy or a throwing array-like: nothing to follow.
  }
  return inner;
}

/** `[code] message` (foreign errors: `[code] Name: message`), on one line, for summaries. */
function describeWithCode(error: Error): string {
  const code = isSluiceError(error) ? error.code : read(error, 'code');
  const text = isSluiceError(error) ? String(read(error, 'message')) : describeError(error);
  const line = (typeof code === 'string' ? `[${code}] ${text}` : text).replace(/\s*\n\s*/g, ' ');
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

/**
 * The first value, nearest first (breadth-first), among `error`, its `cause` chain and the `errors`
 * of aggregates (`AggregateError`, {@link BatchFailedError}, foreign errors shaped alike) for which
 * `predicate` holds. Total: safe on any thrown value, on cycles, on throwing getters, and on a
 * predicate that throws (that value does not match); bounded in depth and in values visited.
 */
export function findErrorBy<T>(error: unknown, predicate: (candidate: unknown) => candidate is T): T | undefined;
export function findErrorBy(error: unknown, predicate: (candidate: unknown) => boolean): unknown;
export function findErrorBy(error: unknown, predicate: (candidate: unknown) => boolean): unknown {
  const seen = new Set<unknown>();
  const queue: Array<{ value: unknown; depth: number }> = [{ value: error, depth: 0 }];
  for (let i = 0; i < queue.length && i < MAX_SEARCH_VISITS; i++) {
    const { value, depth } = queue[i]!;
    if (seen.has(value)) continue;
    seen.add(value);
    let matches = false;
    try {
      matches = predicate(value);
    } catch {
      // A predicate that cannot judge a value does not match it.
    }
    if (matches) return value;
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null || depth >= MAX_SEARCH_DEPTH) {
      continue;
    }
    for (const inner of nested(value)) {
      if (queue.length >= MAX_SEARCH_VISITS) break;
      queue.push({ value: inner, depth: depth + 1 });
    }
  }
  return undefined;
}

/**
 * Whether retrying may help, decided by the nearest Sluice error in `error`, its causes and its
 * aggregated errors ({@link findErrorBy}); false when there is none (a foreign error is not known to
 * be transient).
 */
export function isRetryable(error: unknown): boolean {
  const found = findErrorBy(error, isSluiceError);
  return found !== undefined && read(found, 'retryable') === true;
}

/** A one-line description of any thrown value, for logs and dead-letter headers. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
