/** The closed error list: codes, brand, retryability, and the trip across the thread boundary. */
import { describe, expect, test } from '@jest/globals';
import type * as errors from '../src/errors.ts';
import {
  ConfigError,
  describeError,
  DeserializeError,
  deserializeError,
  ErrorCodes,
  IllegalStateError,
  isRetryable,
  isSluiceError,
  JobLoadError,
  JobValidationError,
  KafkaAuthError,
  KafkaError,
  serializeError,
  SluiceError,
  UserCodeError,
  WorkerCrashedError,
} from '../src/errors.ts';

/** What `postMessage` does to the serialized form: a structured clone. */
function acrossThreads(error: unknown): Error {
  return deserializeError(structuredClone(serializeError(error)));
}

describe('error classes', () => {
  test('each class carries its static code, its name and the brand', () => {
    const cases: Array<[SluiceError, string, string]> = [
      [new ConfigError(['A bad']), 'ConfigError', 'SLUICE_CONFIG_INVALID'],
      [new JobValidationError(['x']), 'JobValidationError', 'SLUICE_JOB_INVALID'],
      [new JobLoadError('m'), 'JobLoadError', 'SLUICE_JOB_LOAD_FAILED'],
      [new UserCodeError('m'), 'UserCodeError', 'SLUICE_USER_CODE_FAILED'],
      [new DeserializeError('m'), 'DeserializeError', 'SLUICE_DESERIALIZE_FAILED'],
      [new WorkerCrashedError('m'), 'WorkerCrashedError', 'SLUICE_WORKER_CRASHED'],
      [new KafkaError('m'), 'KafkaError', 'SLUICE_KAFKA_FAILED'],
      [new KafkaAuthError('m'), 'KafkaAuthError', 'SLUICE_KAFKA_AUTH_FAILED'],
      [new IllegalStateError('m'), 'IllegalStateError', 'SLUICE_ILLEGAL_STATE'],
    ];
    for (const [error, name, code] of cases) {
      expect(error.name).toBe(name);
      expect(error.code).toBe(code);
      expect((error.constructor as unknown as { code: string }).code).toBe(code);
      expect(ErrorCodes).toContain(code);
      expect(isSluiceError(error)).toBe(true);
      expect(error).toBeInstanceOf(SluiceError);
      expect(error).toBeInstanceOf(Error);
    }
  });

  test('ConfigError and JobValidationError list every issue', () => {
    const config = new ConfigError(['A is bad', 'B is bad']);
    expect(config.issues).toEqual(['A is bad', 'B is bad']);
    expect(config.message).toBe('invalid configuration: A is bad; B is bad');
    const job = new JobValidationError(['name is required', 'output is required']);
    expect(job.message).toBe('invalid job: name is required; output is required');
  });

  test('the cause is kept', () => {
    const cause = new TypeError('inner');
    expect(new UserCodeError('outer', cause).cause).toBe(cause);
    expect(new JobLoadError('outer', cause).cause).toBe(cause);
    expect(new IllegalStateError('no cause').cause).toBeUndefined();
  });
});

describe('isSluiceError / isRetryable', () => {
  test('retryable: worker crashes and Kafka failures by default; not user code, config, auth', () => {
    expect(isRetryable(new WorkerCrashedError('x'))).toBe(true);
    expect(isRetryable(new KafkaError('x'))).toBe(true);
    expect(isRetryable(new KafkaError('x', undefined, false))).toBe(false);
    expect(isRetryable(new KafkaAuthError('x'))).toBe(false);
    expect(isRetryable(new UserCodeError('x'))).toBe(false);
    expect(isRetryable(new ConfigError(['x']))).toBe(false);
    expect(isRetryable(new SluiceError('SLUICE_ILLEGAL_STATE', 'x', { retryable: true }))).toBe(true);
  });

  test('total on foreign values: never throws, always false', () => {
    const foreign: unknown[] = [
      new Error('plain'),
      Object.assign(new Error('looks retryable'), { retryable: true, code: 'SLUICE_KAFKA_FAILED' }),
      { retryable: true },
      null,
      undefined,
      'text',
      42,
      Symbol('s'),
      () => undefined,
      Object.create(null) as object,
    ];
    for (const value of foreign) {
      expect(isRetryable(value)).toBe(false);
      expect(isSluiceError(value)).toBe(false);
    }
  });

  test('the brand is a registry symbol: an error from another copy of the module is recognised', async () => {
    // A second evaluation of errors.ts (what a job bundling its own `sluice`, or another realm, has).
    const copy = (await import('../src/errors.ts?copy=1' as string)) as typeof errors;
    expect(copy.SluiceError).not.toBe(SluiceError);
    const theirs = new copy.WorkerCrashedError('from the copy');
    expect(theirs).not.toBeInstanceOf(SluiceError);
    expect(isSluiceError(theirs)).toBe(true);
    expect(isRetryable(theirs)).toBe(true);
    expect(copy.isSluiceError(new UserCodeError('ours'))).toBe(true);
  });

  test('the brand is not enumerable and does not show in JSON', () => {
    const error = new UserCodeError('x');
    expect(Object.keys(error)).not.toContain(Symbol.for('sluice.error'));
    expect(JSON.stringify(error)).not.toContain('sluice.error');
    expect(Object.getOwnPropertyDescriptor(error, Symbol.for('sluice.error'))?.enumerable).toBe(false);
  });
});

describe('serializeError / deserializeError', () => {
  test('serialized form: name, code, message, stack, retryable; plain data (survives structuredClone)', () => {
    const error = new DeserializeError('bad bytes');
    const data = serializeError(error);
    expect(data).toEqual({
      name: 'DeserializeError',
      code: 'SLUICE_DESERIALIZE_FAILED',
      message: 'bad bytes',
      stack: error.stack,
      retryable: false,
    });
    expect(structuredClone(data)).toEqual(data);
  });

  test('foreign errors and thrown non-errors serialize too', () => {
    const type = new TypeError('nope');
    expect(serializeError(type)).toEqual({ name: 'TypeError', message: 'nope', stack: type.stack });
    expect(serializeError('a string')).toEqual({ name: 'Error', message: 'a string' });
    expect(serializeError(42)).toEqual({ name: 'Error', message: '42' });
    expect(serializeError(null)).toEqual({ name: 'Error', message: 'null' });
    const coded = Object.assign(new Error('econn'), { code: 'ECONNREFUSED' });
    expect(serializeError(coded).code).toBe('ECONNREFUSED');
  });

  test('round trip rebuilds the class: name, code, message, stack, brand and retryability', () => {
    for (const original of [
      new JobLoadError('load'),
      new UserCodeError('user'),
      new DeserializeError('deser'),
      new WorkerCrashedError('crash'),
      new KafkaError('kafka'),
      new IllegalStateError('state'),
    ]) {
      const rebuilt = acrossThreads(original);
      expect(rebuilt).toBeInstanceOf(original.constructor as new (...args: never[]) => Error);
      expect(rebuilt.name).toBe(original.name);
      expect(rebuilt.message).toBe(original.message);
      expect(rebuilt.stack).toBe(original.stack);
      expect(isSluiceError(rebuilt)).toBe(true);
      expect((rebuilt as SluiceError).code).toBe(original.code);
      expect(isRetryable(rebuilt)).toBe(isRetryable(original));
    }
  });

  test('round trip of every Sluice error keeps its code and brand (incl. JobValidationError, ConfigError, KafkaAuthError)', () => {
    // A job that fails validation inside a worker thread reaches the main thread this way
    // (worker-entry posts `init-error`); main.ts prints `[code] message` only for branded errors.
    for (const original of [
      new JobValidationError(['name is required']),
      new ConfigError(['A is bad']),
      new KafkaAuthError('SASL authentication failed'),
    ]) {
      const rebuilt = acrossThreads(original);
      expect(rebuilt.name).toBe(original.name);
      expect(rebuilt.message).toBe(original.message);
      expect(isSluiceError(rebuilt)).toBe(true);
      expect((rebuilt as SluiceError).code).toBe(original.code);
    }
  });

  test('round trip keeps a non-default retryable flag', () => {
    const fatal = new KafkaError('producer failed to connect', undefined, false);
    expect(isRetryable(acrossThreads(fatal))).toBe(false);
  });

  test('round trip keeps the cause (what a wrapped user error was)', () => {
    const original = new UserCodeError('map#1 threw', new RangeError('index out of range'));
    const rebuilt = acrossThreads(original);
    expect(rebuilt.cause).toBeInstanceOf(Error);
    expect((rebuilt.cause as Error).message).toBe('index out of range');
    expect((rebuilt.cause as Error).name).toBe('RangeError');
  });

  test('an unknown name becomes a plain Error with that name, message and stack, not branded', () => {
    const type = new TypeError('boom');
    const rebuilt = acrossThreads(type);
    expect(rebuilt).toBeInstanceOf(Error);
    expect(rebuilt.name).toBe('TypeError');
    expect(rebuilt.message).toBe('boom');
    expect(rebuilt.stack).toBe(type.stack);
    expect(isSluiceError(rebuilt)).toBe(false);
    expect(isRetryable(rebuilt)).toBe(false);
  });
});

describe('describeError', () => {
  test('one line for any thrown value', () => {
    expect(describeError(new UserCodeError('bad'))).toBe('UserCodeError: bad');
    expect(describeError(new TypeError('t'))).toBe('TypeError: t');
    expect(describeError('text')).toBe('text');
    expect(describeError(undefined)).toBe('undefined');
    expect(describeError({ toString: () => 'custom' })).toBe('custom');
  });
});
