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

/** True for errors made by Sluice, even when created in another thread's copy of this module. */
export function isSluiceError(error: unknown): error is SluiceError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
}

export function isRetryable(error: unknown): boolean {
  return isSluiceError(error) ? error.retryable : false;
}

export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  stack?: string;
  retryable?: boolean;
  cause?: SerializedError;
}

export function serializeError(error: unknown, depth = 0): SerializedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const cause = (error as { cause?: unknown }).cause;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(error.stack ? { stack: error.stack } : {}),
      ...(isSluiceError(error) ? { retryable: error.retryable } : {}),
      ...(cause !== undefined && depth < 5 ? { cause: serializeError(cause, depth + 1) } : {}),
    };
  }
  return { name: 'Error', message: String(error) };
}

const codes = new Set<string>(ErrorCodes);

/** How each Sluice error class is rebuilt on the other side of a thread boundary. */
const rebuild: Record<string, (message: string, cause: Error | undefined) => SluiceError> = {
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
};

/**
 * Rebuilds an error that crossed a thread boundary: a Sluice error comes back as its own class with
 * its code, retryable flag and cause; a foreign error becomes a plain `Error` with its name and message.
 */
export function deserializeError(data: SerializedError): Error {
  const cause = data.cause ? deserializeError(data.cause) : undefined;
  let error: Error;
  const make = rebuild[data.name];
  if (make && data.code !== undefined && codes.has(data.code)) {
    error = make(data.message, cause);
    if (data.retryable !== undefined) Object.defineProperty(error, 'retryable', { value: data.retryable });
  } else if (data.code !== undefined && codes.has(data.code)) {
    error = new SluiceError(data.code as ErrorCode, data.message, {
      ...(cause ? { cause } : {}),
      ...(data.retryable !== undefined ? { retryable: data.retryable } : {}),
    });
    error.name = data.name;
  } else {
    error = Object.assign(new Error(data.message, cause ? { cause } : undefined), { name: data.name });
    if (data.code !== undefined) Object.assign(error, { code: data.code });
  }
  if (data.stack) error.stack = data.stack;
  return error;
}

/** A one-line description of any thrown value, for logs and dead-letter headers. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
