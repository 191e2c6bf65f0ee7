/**
 * Errors cross the worker-thread boundary as plain objects ({@link serializeError}) and are rebuilt on
 * the other side from a name → class table, keeping their code, retryable flag, cause and the errors
 * of an aggregate.
 */
import {
  BatchFailedError,
  ConfigError,
  DeserializeError,
  type ErrorCode,
  ErrorCodes,
  FatalError,
  ProducerFencedError,
  StateError,
  IllegalStateError,
  isSluiceError,
  JobLoadError,
  JobValidationError,
  KafkaAuthError,
  KafkaError,
  KafkaTlsError,
  RestoreError,
  SluiceError,
  UserCodeError,
  UserCodeTimeoutError,
  WorkerCrashedError,
} from './errors.ts';

export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  stack?: string;
  retryable?: boolean;
  cause?: SerializedError;
  /** The errors of an aggregate (`AggregateError`, {@link BatchFailedError}). */
  errors?: SerializedError[];
}

/**
 * How deep causes and aggregated errors are serialized, and how many errors in all: nested aggregates
 * would otherwise multiply (100 errors of 100 errors…) in what crosses the thread boundary.
 */
const SERIALIZED_DEPTH = 5;
const SERIALIZED_ERRORS = 200;

/**
 * The plain-data form of any thrown value, for `postMessage`. An error met a second time (a cycle,
 * or one error in two places) is written again without what it wraps.
 */
export function serializeError(error: unknown, depth = 0): SerializedError {
  return serializeWithin(error, depth, { left: SERIALIZED_ERRORS, seen: new Set() });
}

function serializeWithin(error: unknown, depth: number, budget: { left: number; seen: Set<unknown> }): SerializedError {
  budget.left--;
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const code = (error as { code?: unknown }).code;
  const cause = (error as { cause?: unknown }).cause;
  const errors = (error as { errors?: unknown }).errors;
  const followed = depth < SERIALIZED_DEPTH && !budget.seen.has(error);
  budget.seen.add(error);
  const data: SerializedError = {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(error.stack ? { stack: error.stack } : {}),
    ...(isSluiceError(error) ? { retryable: error.retryable } : {}),
  };
  if (followed && cause !== undefined && budget.left > 0) data.cause = serializeWithin(cause, depth + 1, budget);
  if (followed && Array.isArray(errors)) {
    data.errors = [];
    for (const inner of errors) {
      if (budget.left <= 0) break;
      data.errors.push(serializeWithin(inner, depth + 1, budget));
    }
  }
  return data;
}

const codes = new Set<string>(ErrorCodes);

/** How each Sluice error class is rebuilt on the other side of a thread boundary. */
const rebuild: Record<string, (message: string, cause: Error | undefined, errors: Error[]) => SluiceError> = {
  ConfigError: (m) => Object.assign(new ConfigError([m]), { message: m }),
  JobValidationError: (m) => Object.assign(new JobValidationError([m]), { message: m }),
  JobLoadError: (m, c) => new JobLoadError(m, c),
  UserCodeError: (m, c) => new UserCodeError(m, c),
  DeserializeError: (m, c) => new DeserializeError(m, c),
  WorkerCrashedError: (m, c) => new WorkerCrashedError(m, c),
  KafkaError: (m, c) => new KafkaError(m, c),
  KafkaAuthError: (m, c) => new KafkaAuthError(m, c),
  KafkaTlsError: (m, c) => new KafkaTlsError(m, c),
  IllegalStateError: (m) => new IllegalStateError(m),
  UserCodeTimeoutError: (m, c) => new UserCodeTimeoutError(m, c),
  RestoreError: (m, c) => new RestoreError(m, c),
  BatchFailedError: (m, c, e) => Object.assign(new BatchFailedError(e, m, { cause: c }), { message: m }),
  FatalError: (m, c) => new FatalError(m, c),
  StateError: (m, c) => new StateError(m, c),
  ProducerFencedError: (m, c) => new ProducerFencedError(m, c),
};

/**
 * Rebuilds an error that crossed a thread boundary: a Sluice error comes back as its own class with
 * its code, retryable flag and cause; a foreign error becomes a plain `Error` with its name and message.
 */
export function deserializeError(data: SerializedError): Error {
  const cause = data.cause ? deserializeError(data.cause) : undefined;
  const errors = data.errors?.map(deserializeError);
  let error: Error;
  const make = rebuild[data.name];
  if (make && data.code !== undefined && codes.has(data.code)) {
    error = make(data.message, cause, errors ?? []);
    if (data.retryable !== undefined) Object.defineProperty(error, 'retryable', { value: data.retryable });
  } else if (data.code !== undefined && codes.has(data.code)) {
    error = new SluiceError(data.code as ErrorCode, data.message, {
      ...(cause ? { cause } : {}),
      ...(data.retryable !== undefined ? { retryable: data.retryable } : {}),
    });
    error.name = data.name;
  } else if (errors) {
    // A foreign aggregate stays an AggregateError, under its own name.
    error = Object.assign(new AggregateError(errors, data.message, cause ? { cause } : undefined), { name: data.name });
    if (data.code !== undefined) Object.assign(error, { code: data.code });
  } else {
    error = Object.assign(new Error(data.message, cause ? { cause } : undefined), { name: data.name });
    if (data.code !== undefined) Object.assign(error, { code: data.code });
  }
  // A Sluice error of a class this side does not know keeps its aggregated errors too.
  if (errors && !('errors' in error)) Object.defineProperty(error, 'errors', { value: errors, enumerable: true });
  if (data.stack) error.stack = data.stack;
  return error;
}
