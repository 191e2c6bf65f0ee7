/**
 * The kafkajs fixes: the linear grouping gives exactly kafkajs's result, the partitioner
 * chooses what kafkajs's DefaultPartitioner chooses, and importing the fixes before kafkajs makes
 * kafkajs's producer use them (in a fresh Node process, as the worker thread does); and the request
 * queue fix stops an idle connection's timer loop.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, test } from '@jest/globals';
import { Partitioners, type Message, type PartitionMetadata } from 'kafkajs';
import { fastDefaultPartitioner, groupMessagesPerPartition } from '../../src/kafka/kafkajs-fixes.ts';
import { testBrokers } from '../helpers.ts';

const require = createRequire(import.meta.url);
const root = new URL('../../', import.meta.url).pathname;

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

const metadata = (n: number, down: number[] = []): PartitionMetadata[] =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: down.includes(partitionId) ? -1 : 0,
    replicas: [0],
    isr: [0],
  }));

describe('groupMessagesPerPartition', () => {
  test('gives kafkajs’s own result, message order kept per partition', () => {
    // kafkajs's original module, loaded fresh from its file.
    const path = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
    const saved = require.cache[path];
    delete require.cache[path];
    const original = require(path) as typeof groupMessagesPerPartition;
    if (saved) require.cache[path] = saved;
    expect(original).not.toBe(groupMessagesPerPartition);

    const random = seeded(3);
    const messages: Message[] = Array.from({ length: 3_000 }, (_, i) => ({
      key: random() < 0.1 ? null : `key-${Math.floor(random() * 500)}`,
      value: String(i),
      ...(random() < 0.05 ? { partition: Math.floor(random() * 6) } : {}),
    }));
    const partitionMetadata = metadata(6);
    // The same deterministic choice for both: the partition each message's value says.
    const partitioner = ({ message }: { message: Message }): number => message.partition ?? Number(message.value) % 6;
    const args = { topic: 't', partitionMetadata, messages, partitioner };
    expect(groupMessagesPerPartition(args)).toEqual(original(args));
    expect(groupMessagesPerPartition({ ...args, partitionMetadata: [] })).toEqual({});
  });
});

describe('fastDefaultPartitioner', () => {
  test('chooses kafkajs’s DefaultPartitioner’s partition for keyed and explicitly placed messages', () => {
    const ours = fastDefaultPartitioner();
    const theirs = Partitioners.DefaultPartitioner();
    const random = seeded(11);
    for (const n of [1, 3, 8, 12, 100]) {
      const partitionMetadata = metadata(n);
      for (let i = 0; i < 500; i++) {
        const text = `user-${Math.floor(random() * 1e9)}-${'é'.repeat(i % 3)}`;
        for (const message of [
          { key: text, value: null },
          { key: Buffer.from(text), value: null },
          { key: text, value: null, partition: i % n },
        ] as Message[]) {
          expect(ours({ topic: 't', partitionMetadata, message })).toBe(
            theirs({ topic: 't', partitionMetadata, message }),
          );
        }
      }
    }
  });

  test('messages without key go round robin over the partitions that have a leader', () => {
    const ours = fastDefaultPartitioner();
    const partitionMetadata = metadata(4, [1]);
    const chosen = Array.from({ length: 30 }, () =>
      ours({ topic: 't', partitionMetadata, message: { key: null, value: 'v' } }),
    );
    expect(new Set(chosen)).toEqual(new Set([0, 2, 3]));
    for (let i = 1; i < chosen.length; i++) {
      const order = [0, 2, 3];
      expect(order.indexOf(chosen[i]!)).toBe((order.indexOf(chosen[i - 1]!) + 1) % 3);
    }
  });
});

describe('installing the fix', () => {
  test('imported before kafkajs, kafkajs’s producer uses the linear grouping', () => {
    const script = [
      "const fixes = await import('./src/kafka/kafkajs-fixes.ts');",
      "await import('kafkajs');",
      'console.log(JSON.stringify([fixes.kafkajsFixes, fixes.kafkajsFixesActive()]));',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim())).toEqual(['installed', true]);
  });

  test('imported after kafkajs, it changes nothing and says so', () => {
    const script = [
      "await import('kafkajs');",
      "const fixes = await import('./src/kafka/kafkajs-fixes.ts');",
      'console.log(JSON.stringify([fixes.kafkajsFixes, fixes.kafkajsFixesActive()]));',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim())).toEqual(['too-late', false]);
  });

  test('the worker thread imports the fix before anything loads kafkajs', () => {
    const source = readFileSync(new URL('../../src/worker/worker-entry.ts', import.meta.url), 'utf8');
    const imports = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    expect(imports[0]).toBe('../kafka/kafkajs-fixes.ts');
  });
});

describe('the encoder fix', () => {
  /** Encodes a record batch with kafkajs's protocol code in a fresh process, with or without the fixes. */
  function encodeBatch(withFixes: boolean): { fix: string | null; pooled: boolean; hex: string } {
    const script = [
      withFixes ? "const fixes = await import('./src/kafka/kafkajs-fixes.ts');" : 'const fixes = {};',
      "const { createRequire } = await import('node:module');",
      "const require = createRequire(process.cwd() + '/');",
      "const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js');",
      "const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js');",
      "const Encoder = require('kafkajs/src/protocol/encoder.js');",
      'const records = Array.from({ length: 300 }, (_, i) => ({ offsetDelta: i, timestampDelta: i * 3,',
      "  key: i % 4 ? Buffer.from('k' + i) : null, value: Buffer.from('v'.repeat(i % 700)),",
      "  headers: i % 5 ? { h: Buffer.from('x' + i), many: [Buffer.from('a'), Buffer.from('b')] } : {} })).map(Record);",
      'const batch = await RecordBatch({ compression: 0, firstOffset: 0, firstTimestamp: 1700000000000,',
      '  maxTimestamp: 1700000000900, producerId: 7, producerEpoch: 1, firstSequence: 3,',
      '  lastOffsetDelta: 299, records });',
      'const pooled = new Encoder().buf.buffer.byteLength === Buffer.poolSize;',
      'console.log(JSON.stringify({ fix: fixes.encoderFix ?? null, pooled, hex: batch.buffer.toString("hex") }));',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    return JSON.parse(out.trim()) as { fix: string | null; pooled: boolean; hex: string };
  }

  test('kafkajs’s encoders take their buffers from the pool and write the same bytes', () => {
    const fixed = encodeBatch(true);
    const original = encodeBatch(false);
    expect(fixed.fix).toBe('installed');
    expect(fixed.pooled).toBe(true);
    expect(original.pooled).toBe(false);
    expect(fixed.hex.length).toBeGreaterThan(100_000);
    expect(fixed.hex).toBe(original.hex);
  });
});

describe('the request queue fix', () => {
  /**
   * In a fresh Node process: an admin client connects and asks for metadata, then its connections sit
   * idle for 300 ms. Reports the timers kafkajs armed while idle and the process warnings.
   */
  function idleConnection(withFix: boolean): { fix: string | null; idleTimers: number; warnings: string[] } {
    const script = `
      const warnings = [];
      process.on('warning', (w) => warnings.push(w.name));
      const fixes = ${withFix} ? await import('./src/kafka/kafkajs-fixes.ts') : undefined;
      const { Kafka, logLevel } = await import('kafkajs');
      const admin = new Kafka({ brokers: process.env.KAFKA_BROKERS.split(','), logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      await admin.fetchTopicMetadata({ topics: [] });
      await new Promise((r) => setTimeout(r, 50));
      let idleTimers = 0;
      const setTimeoutBefore = globalThis.setTimeout;
      globalThis.setTimeout = (fn, ms, ...args) => (idleTimers++, setTimeoutBefore(fn, ms, ...args));
      await new Promise((r) => setTimeoutBefore(r, 300));
      globalThis.setTimeout = setTimeoutBefore;
      await admin.disconnect();
      console.log(JSON.stringify({ fix: fixes ? fixes.requestQueueFix : null, idleTimers, warnings }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, KAFKA_BROKERS: testBrokers().join(',') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.trim()) as { fix: string | null; idleTimers: number; warnings: string[] };
  }

  test('an idle connection arms no timers and Node prints no TimeoutNegativeWarning', () => {
    expect(idleConnection(true)).toEqual({ fix: 'installed', idleTimers: 0, warnings: [] });
  });

  test('without it, kafkajs 2.2.4 re-arms a 1 ms check over and over (what the fix is for)', () => {
    const without = idleConnection(false);
    expect(without.idleTimers).toBeGreaterThan(20);
    if (Number(process.versions.node.split('.')[0]) >= 23) expect(without.warnings).toContain('TimeoutNegativeWarning');
  });
});
