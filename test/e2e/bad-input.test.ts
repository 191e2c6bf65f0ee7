/**
 * Bad input (design §2): a record that fails to deserialize, a user function that throws, a record
 * over the size limit — each goes to `<job>-dlq` with its original key and value bytes and the
 * `sluice-*` headers that say why and where from; it is counted; the batch goes on and the service
 * stays ready. Every other record is processed exactly as a recomputation says.
 */
import { describe, expect, test } from '@jest/globals';
import { type KafkaMessage, type Message } from 'kafkajs';
import { generateClickstream, produceClickstream } from '../../examples/generator/clickstream.ts';
import { onCleanup, testKafka, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService } from '../support/service.ts';
import { follow, newTopic, readAll, sourceId, testProducer, type ReadRecord } from '../support/topics.ts';

const PARTITIONS = 4;
const MAX_RECORD_BYTES = 10_000;

type Code = 'SLUICE_DESERIALIZE_FAILED' | 'SLUICE_RECORD_TOO_LARGE' | 'SLUICE_USER_CODE_FAILED';
type Expectation = { output: { timestamp: number; value: string } } | { code: Code; message: RegExp };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** What the bad-input job must do with one input record, recomputed from its bytes. */
function expectationOf(r: ReadRecord): Expectation {
  const size = (r.key === null ? 0 : Buffer.byteLength(r.key)) + (r.value?.length ?? 0);
  if (size > MAX_RECORD_BYTES) return { code: 'SLUICE_RECORD_TOO_LARGE', message: /exceeds SLUICE_MAX_RECORD_BYTES/ };
  if (r.value === null) return { code: 'SLUICE_DESERIALIZE_FAILED', message: /no value/ };
  let text: string;
  try {
    text = strictUtf8.decode(r.value);
  } catch {
    return { code: 'SLUICE_DESERIALIZE_FAILED', message: /not valid UTF-8/ };
  }
  let e: { page: string; user: string; ts: number; marker?: string };
  try {
    e = JSON.parse(text) as typeof e;
  } catch {
    return { code: 'SLUICE_DESERIALIZE_FAILED', message: /not valid JSON/ };
  }
  // The message must say what the function returned: NaN (not "null", which is how JSON spells NaN).
  if (e.marker === 'nan') return { code: 'SLUICE_USER_CODE_FAILED', message: /eventTime returned NaN/ };
  if (e.user.endsWith('7')) return { code: 'SLUICE_USER_CODE_FAILED', message: /map.*threw.*ends with 7/ };
  return {
    output: {
      // docs/architecture.md: stateless outputs keep the input record's timestamp (not the event
      // time, which would let time-based retention delete results of historical data at once).
      timestamp: r.timestamp,
      value: JSON.stringify({ user: e.user, page: e.page, ts: e.ts, len: e.page.length }),
    },
  };
}

describe('bad input goes to the dead-letter topic and the service goes on', () => {
  test('malformed JSON, invalid UTF-8, no value, oversized records (up to 2 MiB) and throwing user code are dead-lettered with their origin; the rest is exact', async () => {
    // The input accepts records over the broker's 1 MiB default, as a real topic may.
    const input = await newTopic('bad-in', PARTITIONS, { 'max.message.bytes': String(4 * 1024 * 1024) });
    const output = uniqueName('bad-out');
    const name = uniqueName('bad');
    const dlqTopic = `${name}-dlq`;
    const producer = await testProducer();

    // Generated page views (1 % malformed; users ending in 7 make the map throw), with hand-made bad
    // records in the middle, some carrying a header of their own that must survive.
    const generated = [...generateClickstream({ count: 4000, seed: 5, users: 120, malformedFraction: 0.01 })];
    const ts = generated[2000]!.event?.ts ?? Date.UTC(2024, 0, 1);
    await produceClickstream(producer, input, generated.slice(0, 2000), { batchSize: 1000 });
    const trace = { 'x-trace': 'keep-me' };
    const bad: Message[] = [
      { key: 'user-1', value: '{"page": "/x", "user": ', headers: trace },
      { key: 'user-2', value: "{'page': '/x'}" },
      { key: 'user-3', value: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0xc3, 0x28, 0x7d]), headers: trace },
      { key: 'user-4', value: Buffer.from([0xed, 0xa0, 0x80]) }, // an encoded UTF-16 surrogate: not UTF-8
      { key: 'user-5', value: null },
      { key: 'big', value: JSON.stringify({ page: '/big', user: 'big', ts, pad: 'x'.repeat(50_000 - 46) }) },
      { key: 'big', value: Buffer.alloc(MAX_RECORD_BYTES, 0x61) }, // 10 003 bytes with its key: one too many
      { key: 'user-6', value: JSON.stringify({ page: '/nan', user: 'user-6', ts, marker: 'nan' }), headers: trace },
      { key: 'user-8', value: JSON.stringify({ page: '/nan', user: 'user-8', ts, marker: 'nan' }) },
      { key: 'user-77', value: JSON.stringify({ page: '/seven', user: 'user-77', ts }) },
      // At the limit exactly: accepted.
      { key: 'ok', value: JSON.stringify({ page: '/fits', user: 'ok', ts, pad: '' }).padEnd(MAX_RECORD_BYTES - 2) },
    ];
    for (let p = 0; p < PARTITIONS; p++) {
      await producer.send({ topic: input, messages: bad.map((m) => ({ ...m, partition: p })) });
    }
    // Larger than one fetch (1 MiB per partition) and than a produce call of the sink (900 KiB).
    await producer.send({
      topic: input,
      messages: [{ partition: 0, key: 'huge', value: Buffer.alloc(2 * 1024 * 1024, 0x7a) }],
    });
    await produceClickstream(producer, input, generated.slice(2000), { batchSize: 1000 });

    const inputRecords = await readAll(input);
    const expectations = new Map(inputRecords.map((r) => [`${r.partition}:${r.offset}`, { r, x: expectationOf(r) }]));
    const expectedOutputs = [...expectations.values()].flatMap(({ r, x }) =>
      'output' in x ? [`${r.key}|${x.output.timestamp}|${x.output.value}`] : [],
    );
    const expectedDead = [...expectations.values()].filter(({ x }) => 'code' in x);
    const byCode = (code: Code): number => expectedDead.filter(({ x }) => 'code' in x && x.code === code).length;
    expect(byCode('SLUICE_DESERIALIZE_FAILED')).toBeGreaterThan(5 * PARTITIONS);
    expect(byCode('SLUICE_RECORD_TOO_LARGE')).toBe(2 * PARTITIONS + 1);
    expect(byCode('SLUICE_USER_CODE_FAILED')).toBeGreaterThan(100);

    const service = await startService({
      job: 'test/fixtures/jobs/bad-input.ts',
      env: {
        TEST_JOB_NAME: name,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        SLUICE_MAX_RECORD_BYTES: String(MAX_RECORD_BYTES),
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    const seen = await follow([output, dlqTopic]);
    const outputsOf = (): ReadRecord[] => seen.records.filter((r) => r.topic === output);
    const dlqOf = (): ReadRecord[] => seen.records.filter((r) => r.topic === dlqTopic);
    await waitFor(
      'every record processed or dead-lettered',
      () => (outputsOf().length + dlqOf().length >= inputRecords.length ? true : undefined),
      60_000,
    ).catch((error: unknown) => {
      console.log(`${outputsOf().length} outputs, ${dlqOf().length} dead letters\n${service.output().slice(-3000)}`);
      throw error;
    });
    await new Promise((r) => setTimeout(r, 1500));

    // Outputs: exactly the recomputation (key, timestamp = the input record's, value), each once.
    const actualOutputs = outputsOf().map((r) => `${r.key}|${r.timestamp}|${r.value!.toString()}`);
    expect(actualOutputs.sort()).toEqual(expectedOutputs.sort());

    // Dead letters: each bad record once, with its code, a message, its origin and its original bytes.
    const dlq = dlqOf();
    const origins = dlq.map(sourceId);
    expect(new Set(origins).size).toBe(origins.length);
    expect(origins.sort()).toEqual(expectedDead.map(({ r }) => `${r.partition}:${r.offset}`).sort());
    const problems: string[] = [];
    for (const letter of dlq) {
      const id = sourceId(letter);
      const { r, x } = expectations.get(id)!;
      if (!('code' in x)) continue;
      const h = letter.headers;
      if (h['sluice-error-code'] !== x.code) problems.push(`${id}: code ${h['sluice-error-code']}, expected ${x.code}`);
      if (!x.message.test(h['sluice-error-message'] ?? ''))
        problems.push(
          `${id}: message ${JSON.stringify(h['sluice-error-message'])} does not match ${String(x.message)}`,
        );
      if (h['sluice-source-topic'] !== input) problems.push(`${id}: source topic ${h['sluice-source-topic']}`);
      if (letter.key !== r.key) problems.push(`${id}: key ${letter.key}, expected ${r.key}`);
      const same = r.value === null ? letter.value === null : letter.value !== null && letter.value.equals(r.value);
      if (!same) problems.push(`${id}: value bytes differ (${letter.value?.length} vs ${r.value?.length})`);
      if (r.headers['x-trace'] !== undefined && h['x-trace'] !== r.headers['x-trace'])
        problems.push(`${id}: header x-trace lost`);
    }

    // Counted by code; the service is alive and ready and still processes new records.
    const metrics = await service.metrics();
    for (const code of ['SLUICE_DESERIALIZE_FAILED', 'SLUICE_RECORD_TOO_LARGE', 'SLUICE_USER_CODE_FAILED'] as const) {
      expect(`${code} ${metricValue(metrics, 'sluice_records_dead_lettered_total', { code })}`).toBe(
        `${code} ${byCode(code)}`,
      );
    }
    expect(metricValue(metrics, 'sluice_records_dead_lettered_total')).toBe(expectedDead.length);
    expect(metricValue(metrics, 'sluice_records_out_total')).toBe(expectedOutputs.length);
    expect(metricValue(metrics, 'sluice_records_in_total', { topic: input })).toBe(inputRecords.length);
    expect(metricValue(metrics, 'sluice_batches_total', { outcome: 'failed' })).toBe(0);
    expect(service.process.exitCode).toBeNull();
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);

    await producer.send({
      topic: input,
      messages: [{ key: 'after', value: JSON.stringify({ page: '/after', user: 'after', ts }) }],
    });
    await waitFor('a record produced after the bad ones', () =>
      outputsOf().some((r) => r.key === 'after') ? true : undefined,
    );
    await seen.stop();
    console.log(
      `bad input: ${expectedOutputs.length} outputs; dead letters: ${byCode('SLUICE_DESERIALIZE_FAILED')} deserialize, ` +
        `${byCode('SLUICE_RECORD_TOO_LARGE')} too large, ${byCode('SLUICE_USER_CODE_FAILED')} user code`,
    );
    expect((await service.stop('SIGTERM')).code).toBe(0);
    // Last, so that a wrong header or message does not hide the checks above.
    expect(problems).toEqual([]);
  });

  test('a dead letter re-driven into the input and failing again names only its new error and origin', async () => {
    // Operators replay a dead-letter topic into the input once the cause is fixed; records that fail
    // again carry the sluice-* headers of their first failure. The new letter must be unambiguous:
    // one value per sluice-error-*/sluice-source-* header (Kafka's Java client reads `lastHeader`,
    // kafkajs gives an array), and it must be the new one.
    const input = await newTopic('redrive-in', 1);
    const output = uniqueName('redrive-out');
    const name = uniqueName('redrive');
    const old = {
      'sluice-error-code': 'SLUICE_DESERIALIZE_FAILED',
      'sluice-error-message': 'value is not valid JSON: from the first time',
      'sluice-job': 'an-older-job',
      'sluice-source-topic': 'the-first-input',
      'sluice-source-partition': '7',
      'sluice-source-offset': '123456',
      'sluice-source-timestamp': '1',
      'x-trace': 'keep-me',
    };
    const producer = await testProducer();
    await producer.send({
      topic: input,
      messages: [
        { key: 'a', value: '{"still": broken', headers: old },
        { key: 'b', value: JSON.stringify({ page: '/p', user: 'user-17', ts: 1_700_000_000_000 }), headers: old },
        { key: 'c', value: JSON.stringify({ page: '/p', user: 'user-1', ts: 1_700_000_000_000 }) },
      ],
    });
    const service = await startService({
      job: 'test/fixtures/jobs/bad-input.ts',
      env: { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();

    const consumer = testKafka().consumer({ groupId: uniqueName('redrive-reader'), maxWaitTimeInMs: 100 });
    await consumer.connect();
    onCleanup(() => consumer.disconnect());
    await consumer.subscribe({ topics: [`${name}-dlq`], fromBeginning: true });
    const letters: KafkaMessage[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        letters.push(message);
      },
    });
    await waitFor('two dead letters', () => (letters.length >= 2 ? true : undefined), 30_000);
    await consumer.disconnect();

    const expected: Record<string, Record<string, string>> = {
      a: { 'sluice-error-code': 'SLUICE_DESERIALIZE_FAILED', 'sluice-source-offset': '0' },
      b: { 'sluice-error-code': 'SLUICE_USER_CODE_FAILED', 'sluice-source-offset': '1' },
    };
    const problems: string[] = [];
    for (const letter of letters) {
      const key = letter.key!.toString();
      const headers = letter.headers ?? {};
      const values = (name: string): string[] => {
        const v = headers[name];
        return v === undefined ? [] : (Array.isArray(v) ? v : [v]).map((x) => x?.toString() ?? '');
      };
      const want = {
        ...expected[key],
        'sluice-job': name,
        'sluice-source-topic': input,
        'sluice-source-partition': '0',
      };
      for (const [header, value] of Object.entries(want)) {
        const got = values(header);
        if (got.length !== 1 || got[0] !== value)
          problems.push(`${key}: ${header} = ${JSON.stringify(got)}, want ["${value}"]`);
      }
      for (const header of ['sluice-error-message', 'sluice-source-timestamp']) {
        if (values(header).length !== 1) problems.push(`${key}: ${header} = ${JSON.stringify(values(header))}`);
      }
      if (values('x-trace').join() !== 'keep-me')
        problems.push(`${key}: x-trace = ${JSON.stringify(values('x-trace'))}`);
    }
    expect(problems).toEqual([]);
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });
});
