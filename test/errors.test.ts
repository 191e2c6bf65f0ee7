/** The closed error list: codes, brand, retryability, and the trip across the thread boundary. */
import { describe, expect, test } from '@jest/globals';
import type * as errors from '../src/errors.ts';
import {
  BatchFailedError,
  ConfigError,
  describeError,
  DeserializeError,
  ErrorCodes,
  FatalError,
  findErrorBy,
  IllegalStateError,
  isRetryable,
  isSluiceError,
  JobLoadError,
  JobValidationError,
  KafkaAuthError,
  KafkaError,
  RestoreError,
  SluiceError,
  UserCodeError,
  UserCodeTimeoutError,
  WorkerCrashedError,
} from '../src/errors.ts';
import { deserializeError, type SerializedError, serializeError } from '../src/error-serialization.ts';

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
      [new UserCodeTimeoutError('m'), 'UserCodeTimeoutError', 'SLUICE_USER_CODE_TIMEOUT'],
      [new BatchFailedError([new Error('m')]), 'BatchFailedError', 'SLUICE_BATCH_FAILED'],
      [new RestoreError('m'), 'RestoreError', 'SLUICE_RESTORE_FAILED'],
      [new FatalError('m'), 'FatalError', 'SLUICE_FATAL'],
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

describe('BatchFailedError: every failure of a fan-out, AggregateError-style', () => {
  const user = new UserCodeError('map#1 threw');
  const crash = new WorkerCrashedError('worker 2 exited with code 1');
  const foreign = Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' });

  test('keeps every error, in order, and names each with its code in the message', () => {
    const error = new BatchFailedError([user, crash, foreign, new TypeError('t')], 'batch 12 failed');
    expect(error.errors).toEqual([user, crash, foreign, expect.any(TypeError)]);
    expect(error.errors[0]).toBe(user);
    expect(error.message).toBe(
      'batch 12 failed: 4 failures: [SLUICE_USER_CODE_FAILED] map#1 threw; ' +
        '[SLUICE_WORKER_CRASHED] worker 2 exited with code 1; [ECONNREFUSED] Error: connect failed; TypeError: t',
    );
  });

  test('the message stays one bounded line: at most 5 errors shown, newlines folded', () => {
    const many = Array.from({ length: 8 }, (_, i) => new UserCodeError(`part ${i}\nsecond line`));
    const error = new BatchFailedError(many);
    expect(error.errors).toHaveLength(8);
    expect(error.message).toMatch(/^batch failed: 8 failures: \[SLUICE_USER_CODE_FAILED\] part 0 second line; /);
    expect(error.message).toMatch(/part 4 second line; and 3 more$/);
    expect(error.message).not.toContain('\n');
    expect(new BatchFailedError([new Error('x'.repeat(5000))]).message.length).toBeLessThan(400);
  });

  test('thrown non-errors become Errors (the value kept as cause); an iterable is accepted', () => {
    const error = new BatchFailedError(new Set(['text', 42]));
    expect(error.errors.map((e) => e.message)).toEqual(['text', '42']);
    expect(error.errors[1]!.cause).toBe(42);
    expect(error.errors.every((e) => e instanceof Error)).toBe(true);
  });

  test('retryable only if every failure is', () => {
    expect(isRetryable(new BatchFailedError([crash, new KafkaError('k')]))).toBe(true);
    expect(new BatchFailedError([crash, new KafkaError('k')]).retryable).toBe(true);
    expect(isRetryable(new BatchFailedError([crash, user]))).toBe(false);
    expect(isRetryable(new BatchFailedError([crash, foreign]))).toBe(false);
    expect(isRetryable(new BatchFailedError([]))).toBe(false);
    // A failure is judged like isRetryable judges it: through its causes.
    expect(isRetryable(new BatchFailedError([new Error('wrapped', { cause: crash })]))).toBe(true);
  });

  test('a cause may be given', () => {
    const cause = new Error('scheduler');
    expect(new BatchFailedError([user], 'batch 3 failed', { cause }).cause).toBe(cause);
  });
});

describe('findErrorBy', () => {
  const isCode = (code: string) => (e: unknown) => isSluiceError(e) && e.code === code;

  test('finds the error itself, along cause chains and inside errors arrays (AggregateError and ours)', () => {
    const crash = new WorkerCrashedError('crash');
    expect(findErrorBy(crash, isSluiceError)).toBe(crash);
    const chain = new Error('a', { cause: new Error('b', { cause: crash }) });
    expect(findErrorBy(chain, isSluiceError)).toBe(crash);
    const aggregate = new AggregateError([new Error('x'), new Error('y', { cause: crash })], 'many');
    expect(findErrorBy(aggregate, isSluiceError)).toBe(crash);
    const timeout = new UserCodeTimeoutError('slow');
    const batch = new BatchFailedError([new Error('x'), new AggregateError([timeout])]);
    expect(findErrorBy(batch, isCode('SLUICE_USER_CODE_TIMEOUT'))).toBe(timeout);
    expect(findErrorBy(batch, isCode('SLUICE_FATAL'))).toBeUndefined();
    // Foreign aggregates shaped like AggregateError (a plain `errors` array) are searched too.
    expect(findErrorBy({ errors: [{ cause: timeout }] }, isSluiceError)).toBe(timeout);
  });

  test('nearest first: a shallow match wins over a deeper one found earlier in a depth-first walk', () => {
    const deep = new KafkaError('deep');
    const shallow = new UserCodeError('shallow');
    const error = new AggregateError([new Error('first', { cause: new Error('x', { cause: deep }) }), shallow]);
    expect(findErrorBy(error, isSluiceError)).toBe(shallow);
    expect(isRetryable(error)).toBe(false);
  });

  test('any value may match, not only errors; the predicate is typed', () => {
    expect(findErrorBy(new Error('x', { cause: 'text' }), (v) => v === 'text')).toBe('text');
    const found = findErrorBy(new Error('x', { cause: new FatalError('f') }), isSluiceError);
    expect(found?.code).toBe('SLUICE_FATAL');
  });

  test('total: cycles, depth, huge aggregates, throwing getters and proxies, throwing predicates', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    Object.assign(a, { cause: b, errors: [a, b] });
    expect(findErrorBy(a, isSluiceError)).toBeUndefined();

    let deep: unknown = new KafkaError('bottom');
    for (let i = 0; i < 1000; i++) deep = new Error(`level ${i}`, { cause: deep });
    expect(findErrorBy(deep, isSluiceError)).toBeUndefined(); // beyond the depth limit: not followed
    let shallow: unknown = new KafkaError('bottom');
    for (let i = 0; i < 10; i++) shallow = new Error(`level ${i}`, { cause: shallow });
    expect(isRetryable(shallow)).toBe(true);

    const huge = new AggregateError(Array.from({ length: 20_000 }, (_, i) => new Error(String(i))));
    expect(findErrorBy(huge, isSluiceError)).toBeUndefined();

    const getter = Object.defineProperty(new Error('g'), 'cause', {
      get() {
        throw new Error('getter');
      },
    });
    expect(findErrorBy(getter, isSluiceError)).toBeUndefined();
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(findErrorBy(proxy, isSluiceError)).toBeUndefined();
    expect(isSluiceError(proxy)).toBe(false);
    expect(isRetryable(new AggregateError([proxy, new WorkerCrashedError('w')]))).toBe(true);
    const trap = new Proxy(new Error('p'), {
      get() {
        throw new Error('trap');
      },
    });
    expect(findErrorBy(trap, isSluiceError)).toBeUndefined();
    expect(
      findErrorBy(new Error('x', { cause: new KafkaError('k') }), (v) => {
        if (!isSluiceError(v)) throw new Error('cannot judge');
        return true;
      }),
    ).toBeInstanceOf(KafkaError);
    for (const value of [null, undefined, 'text', 42, Symbol('s'), () => undefined, Object.create(null)]) {
      expect(findErrorBy(value, isSluiceError)).toBeUndefined();
    }
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

  test('decided by the nearest Sluice error: a foreign wrapper or aggregate of a retryable error is retryable', () => {
    expect(isRetryable(new Error('wrapper', { cause: new WorkerCrashedError('x') }))).toBe(true);
    expect(isRetryable(new AggregateError([new Error('plain'), new KafkaError('x')]))).toBe(true);
    expect(isRetryable(new UserCodeError('not retryable', new KafkaError('retryable cause')))).toBe(false);
    expect(isRetryable(new UserCodeTimeoutError('x'))).toBe(false);
    expect(isRetryable(new FatalError('x'))).toBe(false);
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
      new RestoreError('restore', undefined, true),
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

  test('round trip of the new classes: UserCodeTimeoutError, FatalError (with cause), BatchFailedError', () => {
    for (const original of [new UserCodeTimeoutError('map#1 exceeded 30000 ms'), new FatalError('loop died')]) {
      const rebuilt = acrossThreads(original);
      expect(rebuilt).toBeInstanceOf(original.constructor as new (...args: never[]) => Error);
      expect((rebuilt as SluiceError).code).toBe(original.code);
      expect(rebuilt.message).toBe(original.message);
    }
    const fatal = acrossThreads(new FatalError('consumer crashed', new TypeError('x is undefined')));
    expect((fatal.cause as Error).name).toBe('TypeError');
  });

  test('round trip of a BatchFailedError keeps EVERY error (class, code, cause), the message and retryability', () => {
    const original = new BatchFailedError(
      [
        new UserCodeError('map#1 threw', new RangeError('bad index')),
        new WorkerCrashedError('worker 1 exited'),
        Object.assign(new Error('econn'), { code: 'ECONNREFUSED' }),
      ],
      'batch 7 failed',
    );
    const data = serializeError(original);
    expect(data.errors).toHaveLength(3);
    expect(structuredClone(data)).toEqual(data);
    const rebuilt = acrossThreads(original);
    expect(rebuilt).toBeInstanceOf(BatchFailedError);
    const batch = rebuilt as BatchFailedError;
    expect(batch.message).toBe(original.message);
    expect(batch.code).toBe('SLUICE_BATCH_FAILED');
    expect(batch.errors.map((e) => e.name)).toEqual(['UserCodeError', 'WorkerCrashedError', 'Error']);
    expect(batch.errors[0]).toBeInstanceOf(UserCodeError);
    expect((batch.errors[0]!.cause as Error).message).toBe('bad index');
    expect(batch.errors[1]).toBeInstanceOf(WorkerCrashedError);
    expect((batch.errors[2] as Error & { code?: string }).code).toBe('ECONNREFUSED');
    expect(isRetryable(batch)).toBe(false);
    expect(isRetryable(acrossThreads(new BatchFailedError([new WorkerCrashedError('a'), new KafkaError('b')])))).toBe(
      true,
    );
  });

  test('a foreign AggregateError comes back as an AggregateError with its errors', () => {
    const original = new AggregateError([new TypeError('t'), new KafkaError('k')], 'two');
    const rebuilt = acrossThreads(original);
    expect(rebuilt).toBeInstanceOf(AggregateError);
    expect(rebuilt.name).toBe('AggregateError');
    expect(rebuilt.message).toBe('two');
    const errors = (rebuilt as AggregateError).errors as Error[];
    expect(errors.map((e) => e.name)).toEqual(['TypeError', 'KafkaError']);
    expect(errors[1]).toBeInstanceOf(KafkaError);
    expect(isRetryable(rebuilt)).toBe(true);
  });

  test('nested aggregates serialize within a bound (100 × 100 × 100 errors do not become a million)', () => {
    const leaf = () => new Error('leaf');
    const level = (make: () => Error) => new AggregateError(Array.from({ length: 100 }, make), 'level');
    const top = level(() => level(() => level(leaf)));
    let count = 0;
    const walk = (data: SerializedError): void => {
      count++;
      if (data.cause) walk(data.cause);
      data.errors?.forEach(walk);
    };
    walk(serializeError(top));
    expect(count).toBeLessThanOrEqual(200);
  });

  test('serializing a cyclic aggregate terminates', () => {
    const a = new AggregateError([], 'a');
    (a.errors as unknown[]).push(a);
    Object.assign(a, { cause: a });
    expect(() => structuredClone(serializeError(a))).not.toThrow();
    expect(acrossThreads(a)).toBeInstanceOf(AggregateError);
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
