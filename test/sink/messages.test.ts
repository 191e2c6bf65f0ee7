/**
 * The produce calls of a batch's publication (messagesOf), without a broker: repartition blocks, then
 * watermarks, outputs and dead letters, each call under the size limit; the changelog records apart,
 * all in one call, on their changelog partitions, tombstones kept.
 */
import { describe, expect, test } from '@jest/globals';
import { type Message } from 'kafkajs';
import { messagesOf, type Publication, type SinkTopics, type TopicMessages } from '../../src/sink/kafka-sink.ts';
import { transactionalIdFor } from '../../src/sink/task-producer.ts';
import { PROGRESS_KEY, windowKey } from '../../src/wire/changelog.ts';
import { BLOCK_HEADER, SOURCE_HEADER, WATERMARK_HEADER } from '../../src/wire/headers.ts';
import { RecordWriter } from '../../src/wire/record-codec.ts';

const enc = new TextEncoder();
const bytes = (text: string): Uint8Array => enc.encode(text);
const text = (value: Message['value'] | Message['key']): string | null =>
  value === null || value === undefined ? null : Buffer.from(value as Buffer).toString();

const topics: SinkTopics = {
  output: 'out',
  dlq: 'job-dlq',
  repartition: 'job-repartition',
  repartitionPartitions: 2,
  changelog: 'job-changelog',
};

function packed(records: Array<[key: Uint8Array | null, value: Uint8Array | null]>): ArrayBuffer {
  const writer = new RecordWriter();
  for (const [key, value] of records) writer.write(0, -1, key, value);
  return writer.finish();
}

function publication(extra: Partial<Publication> = {}): Publication {
  return { outputs: [], repartition: [], dead: [], watermarks: [], changelog: [], ...extra };
}

describe('messagesOf: the changelog', () => {
  test('every task’s changelog records in one call of their own, on their partitions, tombstones kept', () => {
    const { calls, changelog, records } = messagesOf(
      publication({
        outputs: [{ buffer: packed([[bytes('a'), bytes('{"v":1}')]]), count: 1 }],
        changelog: [
          {
            partition: 3,
            buffer: packed([
              [windowKey(0, 'a'), bytes('acc')],
              [windowKey(0, 'b'), null],
              [PROGRESS_KEY, bytes('{"v":1}')],
            ]),
          },
          { partition: 0, buffer: packed([[windowKey(10_000, null), bytes('x')]]) },
        ],
      }),
      topics,
    );
    // The results go first; the changelog is not mixed into their calls.
    expect([...calls].flat().map((c) => c.topic)).toEqual(['out']);
    expect(changelog?.topic).toBe('job-changelog');
    expect(
      changelog?.messages.map((m) => [m.partition, Buffer.from(m.key as Buffer).toString('hex'), text(m.value)]),
    ).toEqual([
      [3, Buffer.from(windowKey(0, 'a')).toString('hex'), 'acc'],
      [3, Buffer.from(windowKey(0, 'b')).toString('hex'), null],
      [3, Buffer.from(PROGRESS_KEY).toString('hex'), '{"v":1}'],
      [0, Buffer.from(windowKey(10_000, null)).toString('hex'), 'x'],
    ]);
    // A tombstone is a null value, not an empty one: compaction deletes the entry.
    expect(changelog?.messages[1]!.value).toBeNull();
    // The broker sets the time: no timestamp of their own.
    for (const m of changelog!.messages) expect(m.timestamp).toBeUndefined();
    expect(records).toBe(5);
  });

  test('nothing to log, or a job without a changelog topic: no changelog call', () => {
    expect(messagesOf(publication(), topics).changelog).toBeUndefined();
    expect(
      messagesOf(publication({ changelog: [{ partition: 0, buffer: packed([]) }] }), topics).changelog,
    ).toBeUndefined();
    const withoutTopic = messagesOf(
      publication({ changelog: [{ partition: 0, buffer: packed([[PROGRESS_KEY, bytes('p')]]) }] }),
      { ...topics, changelog: undefined },
    );
    expect(withoutTopic.changelog).toBeUndefined();
    expect(withoutTopic.records).toBe(0);
  });

  test('a changelog larger than a produce call stays in one call (one record batch: all or nothing)', () => {
    const big = new Uint8Array(200 * 1024);
    const entries = Array.from({ length: 8 }, (_, i) => [windowKey(i * 1_000, 'k'), big] as [Uint8Array, Uint8Array]);
    const { calls, changelog } = messagesOf(
      publication({ changelog: [{ partition: 1, buffer: packed(entries) }] }),
      topics,
    );
    expect([...calls]).toEqual([]);
    expect(changelog?.messages).toHaveLength(8);
  });
});

describe('messagesOf: the results', () => {
  test('in order: repartition blocks, then watermarks to every repartition partition, outputs, dead letters', () => {
    const { calls, changelog, records } = messagesOf(
      publication({
        repartition: [{ source: 'in:0', blocks: [{ partition: 1, count: 2, data: new Uint8Array([2, 0, 0]) }] }],
        watermarks: [{ source: 'in:0', watermark: { streamTime: 5_000, idle: false } }],
        outputs: [{ buffer: packed([[null, bytes('r')]]), count: 1 }],
        dead: [{ key: bytes('k'), value: null, headers: [['sluice-error-code', 'SLUICE_LATE_RECORD']] }],
      }),
      topics,
    );
    expect(changelog).toBeUndefined();
    const messages = [...calls].flat().flatMap((c) => c.messages.map((m) => ({ topic: c.topic, ...m })));
    expect(messages.map((m) => [m.topic, m.partition])).toEqual([
      ['job-repartition', 1],
      ['job-repartition', 0],
      ['job-repartition', 1],
      ['out', undefined],
      ['job-dlq', undefined],
    ]);
    const headers = messages.map((m) => m.headers as Record<string, string | Buffer>);
    expect(String(headers[0]![SOURCE_HEADER])).toBe('in:0');
    expect(String(headers[0]![BLOCK_HEADER])).toBe('2');
    expect(headers[1]![WATERMARK_HEADER]).toBe('5000');
    expect(text(messages[3]!.value)).toBe('r');
    expect(text(messages[4]!.key)).toBe('k');
    expect(records).toBe(5);
  });

  test('calls stay under the size limit: many large outputs are split over several calls, none lost', () => {
    const value = new Uint8Array(100 * 1024);
    const outputs = [{ buffer: packed(Array.from({ length: 30 }, () => [null, value])), count: 30 }];
    const { calls, records } = messagesOf(publication({ outputs }), topics);
    const built = [...calls];
    expect(built.length).toBeGreaterThan(2);
    expect(built.flat().reduce((n, c) => n + c.messages.length, 0)).toBe(30);
    expect(records).toBe(30);
    // Built as iterated, once per iteration: a retry iterates it again and gets the same calls.
    expect([...calls].flat().map((c) => c.messages.length)).toEqual(built.flat().map((c) => c.messages.length));
    const first = calls[Symbol.iterator]().next();
    expect(first.done).toBe(false);
    expect((first.value as TopicMessages[]).flatMap((c) => c.messages).length).toBeLessThan(30);
  });
});

describe('transactional ids', () => {
  test('one per group and input partition: the same on every replica, different per partition', () => {
    expect(transactionalIdFor('clicks', 'views', 3)).toBe('clicks:views:3');
    // Dashes may be in group ids and topic names, colons may not: two jobs never share an id.
    expect(transactionalIdFor('clicks', 'eu-views', 0)).not.toBe(transactionalIdFor('clicks-eu', 'views', 0));
    expect(transactionalIdFor('clicks', 'views', 3)).toBe(transactionalIdFor('clicks', 'views', 3));
    expect(transactionalIdFor('clicks', 'views', 3)).not.toBe(transactionalIdFor('clicks', 'views', 4));
    expect(transactionalIdFor('clicks', 'views', 3)).not.toBe(transactionalIdFor('other', 'views', 3));
  });
});
