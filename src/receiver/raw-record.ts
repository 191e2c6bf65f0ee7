/**
 * A fetched kafkajs message as the buffer queue holds it: offset, timestamp, key, value and headers
 * (each header value as bytes), and its size as the queue's byte bound counts it.
 */
import type { KafkaMessage } from 'kafkajs';
import { type RawRecord } from '../queue/buffer-queue.ts';

export function toRaw(message: KafkaMessage): RawRecord {
  const headers: Array<[string, Buffer]> = [];
  let size = (message.key?.length ?? 0) + (message.value?.length ?? 0);
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      const buf = typeof v === 'string' ? Buffer.from(v) : v;
      headers.push([name, buf]);
      size += name.length + buf.length;
    }
  }
  return {
    offset: message.offset,
    timestamp: Number(message.timestamp),
    key: message.key ?? null,
    value: message.value ?? null,
    headers,
    size,
  };
}
