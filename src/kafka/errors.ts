/**
 * What a kafkajs failure means for Sluice, decided from kafkajs's error classes, Kafka protocol error
 * types and Node's socket/TLS error codes — not from message text, which kafkajs and OpenSSL word
 * differently from version to version. The one exception: OpenSSL's "SSL alert number N", where
 * kafkajs dropped Node's code (tls-codes.ts).
 *
 * kafkajs reports most failures wrapped: its retrier turns the last error of an exhausted retry loop
 * into `KafkaJSNumberOfRetriesExceeded` (cause: that error), a non-retriable one into
 * `KafkaJSNonRetriableError` (cause: it), topic creation into `KafkaJSAggregateError` (errors: one
 * per topic), and every socket or TLS failure into `KafkaJSConnectionError` whose `code` is Node's
 * (`ECONNREFUSED`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE`, …). So
 * both functions here look through the whole chain.
 */
import { isSluiceError, KafkaAuthError, KafkaError, KafkaTlsError, type SluiceError } from '../errors.ts';
import { alertCode, tlsCodeProblem, type TlsProblem } from './tls-codes.ts';

/** Where the failing client was connecting: named in the messages. */
export interface KafkaErrorContext {
  readonly brokers: readonly string[];
}

type Verdict = 'retriable' | 'not-retriable' | 'fatal' | 'wrapper';

/** Protocol error types that are configuration problems: retrying cannot help, a person must act. */
const FATAL_TYPES = new Set([
  'SASL_AUTHENTICATION_FAILED',
  'UNSUPPORTED_SASL_MECHANISM',
  'ILLEGAL_SASL_STATE',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
  'SECURITY_DISABLED',
  'INVALID_CONFIG',
]);
const SASL_TYPES = new Set(['SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE']);
const AUTHORIZATION_TYPES = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
]);

/**
 * Transient cluster and group states that kafkajs's table marks non-retriable (or names the old way)
 * because *its* answer is to rejoin or refresh metadata first; for Sluice they pass on their own.
 * Both the kafkajs names and the current Kafka names are listed.
 */
const TRANSIENT_TYPES = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'REBALANCE_IN_PROGRESS',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_NOT_AVAILABLE',
  'GROUP_LOAD_IN_PROGRESS',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'NOT_COORDINATOR_FOR_GROUP',
  'NOT_COORDINATOR',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'NOT_CONTROLLER',
]);

/** kafkajs classes (by `name`, which survives a thread boundary where `instanceof` does not). */
const TRANSIENT_CLASSES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSNoBrokerAvailableError',
  // kafkajs marks it non-retriable, yet it means "no coordinator yet": the group's broker is starting.
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSTimeout',
]);
const BROKEN_CLASSES = new Set([
  'KafkaJSPartialMessageError',
  'KafkaJSUnsupportedMagicByteInMessageSet',
  'KafkaJSServerDoesNotSupportApiKey',
  'KafkaJSNotImplemented',
  'KafkaJSInvariantViolation',
]);

/** Socket failures: the broker is down, restarting or not reachable yet. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

type Fields = {
  name?: unknown;
  type?: unknown;
  code?: unknown;
  retriable?: unknown;
  cause?: unknown;
  originalError?: unknown;
  retriableError?: unknown;
  errors?: unknown;
  partitions?: unknown;
  groups?: unknown;
  retryCount?: unknown;
  message?: unknown;
};

function fields(error: unknown): Fields | undefined {
  return typeof error === 'object' && error !== null ? (error as Fields) : undefined;
}

const nameOf = (error: unknown): string => {
  const name = fields(error)?.name;
  return typeof name === 'string' ? name : '';
};
const typeOf = (error: unknown): string | undefined => {
  const type = fields(error)?.type;
  return typeof type === 'string' ? type : undefined;
};
const codeOf = (error: unknown): string | undefined => {
  const code = fields(error)?.code;
  return typeof code === 'string' ? code : undefined;
};

/** The code the OpenSSL alert in an error's message stands for. */
const alertCodeOf = (error: unknown): string | undefined => {
  const message = fields(error)?.message;
  return typeof message === 'string' ? alertCode(message) : undefined;
};

/** Node's TLS code of an error, or else the one its OpenSSL alert text stands for. */
const tlsCodeOf = (error: unknown): string | undefined => codeOf(error) ?? alertCodeOf(error);

/** The error a wrapper wraps: `cause` (kafkajs, ES2022), `originalError` or `retriableError` (other wrappers). */
function innerOf(error: unknown): unknown {
  const f = fields(error);
  if (!f) return undefined;
  for (const inner of [f.cause, f.originalError, f.retriableError])
    if (inner !== undefined && inner !== error) return inner;
  return undefined;
}

/** The members of an aggregate: `errors` (KafkaJSAggregateError, AggregateError), per-partition/group errors. */
function membersOf(error: unknown): unknown[] | undefined {
  const f = fields(error);
  if (!f) return undefined;
  if (Array.isArray(f.errors) && f.errors.length > 0) return f.errors as unknown[];
  for (const list of [f.partitions, f.groups]) {
    if (!Array.isArray(list)) continue;
    // KafkaJSDeleteTopicRecordsError.partitions and KafkaJSDeleteGroupsError.groups: `{ …, error }`.
    const present = list
      .map((entry) => (entry as { error?: unknown } | null)?.error)
      .filter((e) => e !== undefined && e !== null);
    if (present.length > 0) return present;
  }
  return undefined;
}

/** Every error reachable from `error` through wrappers and aggregates, outermost first. */
function chain(error: unknown): unknown[] {
  const seen = new Set<unknown>();
  const out: unknown[] = [];
  const visit = (e: unknown, depth: number): void => {
    if (e === undefined || e === null || seen.has(e) || depth > 16) return;
    seen.add(e);
    out.push(e);
    for (const member of membersOf(e) ?? []) visit(member, depth + 1);
    visit(innerOf(e), depth + 1);
  };
  visit(error, 0);
  return out;
}

/** The TLS problem an error of the chain reports, with its Node code. */
function tlsProblem(error: unknown): { code: string; problem: TlsProblem } | undefined {
  // Node's own codes first, anywhere in the chain; the alert text only where no code says more.
  for (const code of [...chain(error).map(codeOf), ...chain(error).map(alertCodeOf)]) {
    const problem = code === undefined ? undefined : tlsCodeProblem(code);
    if (code !== undefined && problem) return { code, problem };
  }
  return undefined;
}

function isSasl(error: unknown): boolean {
  return nameOf(error) === 'KafkaJSSASLAuthenticationError' || SASL_TYPES.has(typeOf(error) ?? '');
}

/** What `error` says by itself about retrying, not looking at what it wraps. */
function ownVerdict(error: unknown): Verdict {
  const f = fields(error);
  if (!f) return 'not-retriable';
  if (isSluiceError(error)) {
    if (error.code === 'SLUICE_KAFKA_AUTH_FAILED' || error.code === 'SLUICE_KAFKA_TLS_FAILED') return 'fatal';
    if (error.code === 'SLUICE_CONFIG_INVALID') return 'fatal';
    return error.retryable ? 'retriable' : 'not-retriable';
  }
  if (isSasl(error)) return 'fatal';
  const tlsCode = tlsCodeOf(error);
  if (tlsCode !== undefined && tlsCodeProblem(tlsCode)) return 'fatal';
  const code = codeOf(error);
  const type = typeOf(error);
  if (type !== undefined && typeof f.code === 'number') {
    if (FATAL_TYPES.has(type)) return 'fatal';
    if (TRANSIENT_TYPES.has(type)) return 'retriable';
    return f.retriable === true ? 'retriable' : 'not-retriable';
  }
  const name = nameOf(error);
  if (name === 'KafkaJSNumberOfRetriesExceeded' || name === 'KafkaJSNonRetriableError') return 'wrapper';
  if (TRANSIENT_CLASSES.has(name)) return 'retriable';
  if (BROKEN_CLASSES.has(name)) return 'not-retriable';
  if (code !== undefined && NETWORK_CODES.has(code)) return 'retriable';
  if (name.startsWith('KafkaJS')) {
    // A generic KafkaJSError: kafkajs sets the flag on purpose where it throws one (e.g. a rebalance
    // wrapped for its retrier); one that wraps a cause is judged by the cause.
    if (innerOf(error) !== undefined) return 'wrapper';
    return f.retriable === true ? 'retriable' : 'not-retriable';
  }
  return 'wrapper';
}

function retriable(error: unknown, depth: number): boolean {
  if (depth > 16 || fields(error) === undefined) return false;
  const members = membersOf(error);
  // An aggregate repeats every member when retried: only worth it when each member may pass.
  if (members) return members.every((m) => retriable(m, depth + 1));
  const verdict = ownVerdict(error);
  if (verdict === 'retriable') return true;
  if (verdict !== 'wrapper') return false;
  const inner = innerOf(error);
  return inner !== undefined && retriable(inner, depth + 1);
}

/**
 * True when trying the same Kafka operation again later may succeed: the broker was unreachable or
 * restarting, a leader or coordinator was moving, a group was rebalancing, a request timed out.
 * False for authentication, TLS configuration, authorization and invalid configuration anywhere in
 * the chain, for other non-retriable protocol errors, and for errors it does not know.
 */
export function isRetriableKafkaError(error: unknown): boolean {
  if (chain(error).some((e) => ownVerdict(e) === 'fatal')) return false;
  return retriable(error, 0);
}

/** One line: OpenSSL messages end in a newline and carry file positions. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The innermost error of the wrapper chain (not into aggregates), as `Name: message`. */
function rootDetail(error: unknown): string {
  let root = error;
  for (let inner = innerOf(root), depth = 0; inner !== undefined && depth < 16; inner = innerOf(root), depth++) {
    root = inner;
  }
  const retries = fields(error)?.retryCount;
  const message = fields(root)?.message;
  const text =
    root instanceof Error || typeof message === 'string'
      ? `${nameOf(root) || 'Error'}: ${String(message)}`
      : String(root);
  const members = membersOf(root);
  const membersText = members
    ? ` (${members.map((m) => `${typeOf(m) ?? nameOf(m)}: ${String(fields(m)?.message ?? m)}`).join('; ')})`
    : '';
  return oneLine(`${text}${membersText}${typeof retries === 'number' ? ` after ${retries + 1} attempts` : ''}`);
}

function isUnreachable(error: unknown): boolean {
  return chain(error).some((e) => {
    const name = nameOf(e);
    const code = codeOf(e);
    return (
      name === 'KafkaJSConnectionError' ||
      name === 'KafkaJSConnectionClosedError' ||
      name === 'KafkaJSNoBrokerAvailableError' ||
      name === 'KafkaJSBrokerNotFound' ||
      (code !== undefined && NETWORK_CODES.has(code))
    );
  });
}

/**
 * A Sluice error for a failed Kafka operation, for logs and for the one start-up line `main` prints:
 * - {@link KafkaAuthError} for SASL failures, naming the `KAFKA_SASL_*` settings;
 * - {@link KafkaTlsError} for TLS failures that are configuration (an untrusted or mis-named broker
 *   certificate, a client certificate the broker refuses, TLS against a plaintext listener), naming
 *   the `KAFKA_SSL_*` variable to fix;
 * - {@link KafkaError} otherwise, `retryable` as {@link isRetriableKafkaError} decides.
 * Sluice errors pass through unchanged. Accepts the brokers alone for the callers that have only them.
 */
export function classifyKafkaError(error: unknown, context: KafkaErrorContext | readonly string[]): SluiceError {
  if (isSluiceError(error)) return error;
  const brokers = ('brokers' in context ? context.brokers : context).join(',');
  const sasl = chain(error).find(isSasl);
  if (sasl !== undefined) {
    const advice =
      typeOf(sasl) === 'UNSUPPORTED_SASL_MECHANISM'
        ? 'the brokers do not offer the mechanism in KAFKA_SASL_MECHANISM'
        : 'check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD';
    return new KafkaAuthError(`Kafka authentication failed at ${brokers}: ${advice} (${rootDetail(sasl)})`, error);
  }
  const tls = tlsProblem(error);
  if (tls) {
    return new KafkaTlsError(`Kafka TLS with ${brokers} failed: ${tls.problem.explain} (${tls.code})`, error);
  }
  const authorization = chain(error).find((e) => AUTHORIZATION_TYPES.has(typeOf(e) ?? ''));
  if (authorization !== undefined) {
    return new KafkaError(
      `Kafka refused an operation at ${brokers} (${typeOf(authorization)}): grant the client's principal the ACLs it needs (${rootDetail(error)})`,
      error,
      false,
    );
  }
  const what = isUnreachable(error) ? 'Kafka unreachable at' : 'Kafka request failed at';
  return new KafkaError(`${what} ${brokers}: ${rootDetail(error)}`, error, isRetriableKafkaError(error));
}
